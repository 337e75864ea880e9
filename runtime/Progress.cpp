// Progress: under construction.
