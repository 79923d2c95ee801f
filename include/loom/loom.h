/* loom — a deep-learning training runtime in C11. One include for everything. */
#ifndef LOOM_LOOM_H
#define LOOM_LOOM_H

#include "loom/augment.h"
#include "loom/checkpoint.h"
#include "loom/onnx.h"
#include "loom/ckdir.h"
#include "loom/dataset.h"
#include "loom/dist.h"
#include "loom/error.h"
#include "loom/exec.h"
#include "loom/fit.h"
#include "loom/graph.h"
#include "loom/loader.h"
#include "loom/optim.h"
#include "loom/schedule.h"
#include "loom/train_state.h"
#include "loom/trainer.h"
#include "loom/types.h"
#include "loom/zoo.h"

#endif
