#pragma once
// Which BLAS this process's matrix products run on. Debian's LibTorch calls whichever
// libblas.so.3 the system's alternatives point to; where that is the reference BLAS (package
// libblas3, chosen when no optimised one is installed) CPU models run about 10x slower
// (docs/benchmarks.md, "CPU models and the BLAS"), and nothing else says so.

#include <optional>
#include <string>
#include <string_view>

namespace braid::engine {

// The file that provides this process's `sgemm_`, symbolic links resolved; empty when no
// loaded shared library exports one (pip wheels link MKL into LibTorch itself).
std::string blas_library();

// A warning for that library, when it is the reference BLAS; none otherwise.
std::optional<std::string> blas_warning(std::string_view library);

// Makes OpenBLAS, when it is this process's BLAS, run each call on its caller's thread alone, as
// braid wants every call to (it runs calls in parallel itself). OpenBLAS's pthread build keeps
// its own thread count and ignores at::set_num_threads(1): on 2 cores, 4 clients calling dense
// layers ran at a third of the throughput (benchmarks.md, "CPU models and the BLAS"). Returns
// whether it found OpenBLAS.
bool blas_one_thread();

}  // namespace braid::engine
