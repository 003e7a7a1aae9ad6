#include "engine/backends/blas.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

namespace braid::engine {

std::string blas_library() {
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (!sgemm || !dladdr(sgemm, &info) || !info.dli_fname || !*info.dli_fname) return {};
  std::unique_ptr<char, decltype(&std::free)> real(realpath(info.dli_fname, nullptr), &std::free);
  return real ? std::string(real.get()) : std::string(info.dli_fname);
}

bool blas_one_thread() {
  using SetThreads = void (*)(int);
  auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!set) return false;
  set(1);
  return true;
}

std::optional<std::string> blas_warning(std::string_view library) {
  // Debian's libblas3 installs the reference BLAS as <libdir>/blas/libblas.so.3.<version>;
  // OpenBLAS, BLIS and ATLAS install theirs in folders of their own names.
  const std::filesystem::path path(library);
  if (path.parent_path().filename() != "blas" || !path.filename().string().starts_with("libblas.so")) {
    return std::nullopt;
  }
  return fmt::format(
      "matrix products run on the reference BLAS ({}), which makes dense layers 10x slower than OpenBLAS does: "
      "install libopenblas0-openmp (scripts/bootstrap.sh does)",
      library);
}

}  // namespace braid::engine
