#pragma once
// LibTorch alone, for benchmarks that compare braid with the same model calls made directly
// (braid-gpu-bench). LibTorch-free header; the LibTorch code is in baseline.cpp, built with a
// CUDA LibTorch only.

#include <cstdint>
#include <string>
#include <vector>

#include "engine/status.hpp"

namespace braid::engine {

// Loads the TorchScript file `path` on CUDA device 0 and times, `warmup + iterations` times: a
// pinned host tensor of `shape` copied in, `calls` calls of `method` back to back on one stream
// from this thread (each call's result fed to the next), the result copied out (which waits for
// the device). Returns the measured iterations' wall times in microseconds. `as_graph`: the
// `calls` calls are captured once as one CUDA graph, and each iteration copies in, replays it
// and copies out (the most a hand-written program can do for a fixed shape).
Result<std::vector<double>> torch_chain_baseline_us(const std::string& path, const std::string& method,
                                                    const std::vector<std::int64_t>& shape, int calls, int warmup,
                                                    int iterations, bool as_graph = false);

}  // namespace braid::engine
