#include "helperd.h"

struct helperd helperd = {.self = -1};
