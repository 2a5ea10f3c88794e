// SIGTERM and SIGINT while train_scpn trains: the first one asks the run to stop after the current step
// with a checkpoint (exit code kExitStoppedBySignal); a second one ends the process at once with 128 + the
// signal's number. Checkpoints are written atomically, so even that leaves last.safetensors whole: the
// previous one, or the new one.
#pragma once

namespace scpn::train {

// train_scpn's exit code after a stop asked for by SIGTERM or SIGINT, with a checkpoint written: resume
// with --resume. (75 is EX_TEMPFAIL in sysexits.h: "try again later".)
inline constexpr int kExitStoppedBySignal = 75;

// Installs the handlers for as long as it lives and puts the previous ones back afterwards. Nested
// instances share the outermost one's handlers and request (train_scpn's main installs them before the
// config is read, the Trainer again for tests and other callers), so a signal is never lost between them.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The signal that asked for a stop (SIGTERM or SIGINT), or 0.
  int requested() const;
  // The stop was carried out (checkpoint written): a later signal is a new first one.
  void acknowledge();
};

}  // namespace scpn::train
