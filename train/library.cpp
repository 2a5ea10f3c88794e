// Anchors the scpn_train library so it exists before its first unit lands; the units (train/data,
// train/scpn, train/eval) are picked up by CMake's glob.
namespace scpn::train {
const char* library_name() { return "scpn_train"; }
}  // namespace scpn::train
