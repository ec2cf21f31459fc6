#include "operators/transcript.h"
