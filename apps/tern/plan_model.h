// Adapter from a parsed config.json (model::ModelConfig) to the plain account::ModelFigures the
// cost formulas take. Lives in apps/ because account/ sits below model/ and must not see it.
#pragma once

#include <string>

#include "account/model_figures.h"
#include "model/config.h"

namespace tern::app {

account::ModelFigures model_figures(const model::ModelConfig& c);
// Reads a config.json (or a model directory holding one) and converts it.
account::ModelFigures model_figures_from_file(const std::string& path);

}  // namespace tern::app
