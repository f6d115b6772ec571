// tapegrad: everything in one include.
#pragma once

#include "autograd/gradcheck.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/linalg.h"
#include "ops/loss.h"
#include "ops/reduction.h"
#include "ops/repeat.h"
#include "ops/shape.h"
#include "ops/softmax.h"
