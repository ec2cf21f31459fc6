// weir: command-line entry point; dispatches to the subcommands in commands.h.
#include <CLI/CLI.hpp>

#include "config/config.h"
#include "runtime/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"weir: event-time stream processor for IoT gateways"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "weir " WEIR_VERSION);

  weir::RunOptions run;
  auto* run_cmd = app.add_subcommand("run", "Ingest, process, store and forward until SIGINT/SIGTERM; SIGHUP reloads the config");
  run_cmd->add_option("config", run.config_path, "Pipeline config (JSON)")->required();
  run_cmd->add_option("--log-level", run.log_level, "error, warn, info or debug")->capture_default_str();

  weir::ValidateOptions validate;
  std::string memory;
  auto* validate_cmd = app.add_subcommand("validate", "Check a config; print every error with its JSON pointer, or a summary (exit 0 valid, 2 invalid, 1 unreadable file)");
  validate_cmd->add_option("config", validate.config_path, "Pipeline config (JSON)")->required();
  validate_cmd->add_option("--db", validate.db_path, "Also say what starting on this database would do to each pipeline");
  validate_cmd->add_option("--memory", memory, "Warn when the memory budget exceeds this size (e.g. 64MB)");

  weir::ReplayOptions replay;
  auto* replay_cmd = app.add_subcommand("replay", "Deterministic offline run over recorded input (JSON Lines); no broker, no wall clock");
  replay_cmd->add_option("config", replay.config_path, "Pipeline config (JSON)")->required();
  replay_cmd->add_option("--input", replay.input_path, "Replay input, JSON Lines (DESIGN 8)")->required();
  replay_cmd->add_option("--output", replay.output_path, "Write results here (default: stdout)");
  replay_cmd->add_option("--db", replay.db_path, "Keep storage in this SQLite file instead of memory");
  replay_cmd->add_flag("--drain", replay.drain, "At the end, fire everything still open");

  weir::StatusOptions status;
  auto* status_cmd = app.add_subcommand("status", "Backlog, oldest pending result, per-pipeline counters, flush progress");
  status_cmd->add_option("--db", status.db_path, "weir's SQLite database");
  status_cmd->add_option("--url", status.url, "weir's metrics URL (http://host:port/metrics)");
  status_cmd->add_flag("--json", status.json, "Machine-readable output");
  status_cmd->add_flag("--watch", status.watch, "Refresh every second");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (*run_cmd) return weir::RunDaemon(run);
  if (*validate_cmd) {
    if (!memory.empty()) {
      auto bytes = weir::ParseSizeBytes(memory);
      if (!bytes) {
        fprintf(stderr, "weir validate: --memory %s is not a size (use e.g. 64MB)\n", memory.c_str());
        return 2;
      }
      validate.memory_limit_bytes = *bytes;
    }
    return weir::RunValidate(validate);
  }
  if (*replay_cmd) return weir::RunReplay(replay);
  if (*status_cmd) return weir::RunStatus(status);
  return 2;
}
