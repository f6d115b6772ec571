// tapegrad: everything in one include.
//   in this tree:       #include "tapegrad.h"
//   installed / CMake:  #include <tapegrad/tapegrad.h>
#pragma once

#include "autograd/gradcheck.h"
#include "autograd/graph.h"
#include "autograd/interop.h"
#include "autograd/print.h"
#include "autograd/random.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
#include "models/sgd.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/fused/nw_attention.h"
#include "ops/indexing.h"
#include "ops/linalg.h"
#include "ops/loss.h"
#include "ops/reduction.h"
#include "ops/repeat.h"
#include "ops/shape.h"
#include "ops/softmax.h"
