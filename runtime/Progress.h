// Progress display for long work: a redrawn bar on a terminal, plain lines
// otherwise. Under construction.
#pragma once
