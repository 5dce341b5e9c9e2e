// The sampling layer's public face: include this to get SamplingParams, Sampler and the
// individual transforms. Split into small headers so each transform's file stays one concern.
#pragma once

#include "infer/candidates.h"
#include "infer/sampler.h"
#include "infer/sampling_params.h"
#include "infer/token_history.h"
#include "infer/transforms.h"
