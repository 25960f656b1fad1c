#include "trace/trace-hw_gru.h"
