// Dataset: under construction.
