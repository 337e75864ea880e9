// Training: under construction.
