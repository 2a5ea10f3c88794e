// The handlers behind StopSignals (see stop_signals.h). A handler may only touch a sig_atomic_t and call
// async-signal-safe functions: it records the signal, writes one line with write(2), and on a second
// signal calls _exit(2).
#include "train/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>


namespace scpn::train {

namespace {

volatile sig_atomic_t g_requested = 0;
int g_depth = 0;  // StopSignals alive; only the outermost installs and restores the handlers
struct sigaction g_previous_term, g_previous_int;

void say(const char* text) {
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void on_stop_signal(int signal) {
  if (g_requested != 0) {
    say("\ntrain_scpn: second signal: exiting now; last.safetensors is the last completed checkpoint\n");
    ::_exit(128 + signal);
  }
  g_requested = signal;
  say(signal == SIGINT ? "\ntrain_scpn: SIGINT: stopping after this step with a checkpoint (again to exit now)\n"
                       : "\ntrain_scpn: SIGTERM: stopping after this step with a checkpoint (again to exit now)\n");
}

}  // namespace

StopSignals::StopSignals() {
  if (g_depth++ > 0) return;
  g_requested = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // interrupted reads and writes carry on rather than fail with EINTR
  ::sigaction(SIGTERM, &action, &g_previous_term);
  ::sigaction(SIGINT, &action, &g_previous_int);
}

StopSignals::~StopSignals() {
  if (--g_depth > 0) return;
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
  ::sigaction(SIGINT, &g_previous_int, nullptr);
}

int StopSignals::requested() const { return g_requested; }

void StopSignals::acknowledge() { g_requested = 0; }

}  // namespace scpn::train
