// Writing a result file atomically: a temporary file in the destination folder, flushed and synced, then
// renamed over the destination, so a crash or a full disk never leaves a half-written report or config.
#pragma once
#include <string>

namespace scpn::train {

// Throws scpn::Error naming the path and the reason; the destination is untouched on failure.
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace scpn::train
