// `weir validate CONFIG --db PATH` (DESIGN 6.5): what starting on that
// database would do to each pipeline, worked out from the stored pipeline
// records (name, generation, fingerprint, definition_json) and the config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "storage/store.h"

namespace weir {

enum class StartAction {
  kKeep,           // same definition: state, watermarks and windows carry on
  kNew,            // starts empty (a name never used, or one removed before)
  kRemove,         // open windows and sessions emitted, then its state deleted
  kNewGeneration,  // as kRemove for the old definition, then starts empty under g+1
};
const char* StartActionName(StartAction action);  // "keep", "new", "remove", "new generation"

struct PipelinePlan {
  std::string name;
  StartAction action = StartAction::kKeep;
  int64_t generation = 0;      // the generation it runs under afterwards (kRemove: the stored one)
  int64_t old_generation = 0;  // kNewGeneration, kRemove: the stored generation
  // kNewGeneration: the definition keys that changed, as "window.size: 1m -> 5m".
  std::vector<std::string> changes;
};

// In config order, then removed pipelines in stored (name) order. A stored
// record with an empty fingerprint is a removed pipeline whose next
// generation is reserved: adding that name again starts at that generation.
std::vector<PipelinePlan> PlanStart(const Config& config,
                                    const std::vector<PipelineRecord>& stored);

// The keys of two canonical definition JSONs (PipelineConfig::definition_json)
// that differ, as "path: old -> new" with durations written with units.
std::vector<std::string> DefinitionChanges(const std::string& old_json,
                                           const std::string& new_json);

// "climate", "climate~1": the pipeline part of result ids.
std::string PipelineIdPart(const std::string& name, int64_t generation);

}  // namespace weir
