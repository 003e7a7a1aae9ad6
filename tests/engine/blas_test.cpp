// Which BLAS the process runs on, and the warning a reference BLAS earns; the engine reports a
// backend's warnings once per backend that loaded models.
#include <doctest/doctest.h>

#include <dlfcn.h>

#include <filesystem>

#include "engine/backends/blas.hpp"
#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"

namespace braid::test {

TEST_CASE("blas: the reference BLAS is warned about, optimised ones are not") {
  auto w = engine::blas_warning("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3");
  REQUIRE(w);
  CHECK(w->find("reference BLAS (/usr/lib/x86_64-linux-gnu/blas/libblas.so.3)") != std::string::npos);
  CHECK(w->find("libopenblas0-openmp") != std::string::npos);
  CHECK(engine::blas_warning("/usr/lib/aarch64-linux-gnu/blas/libblas.so.3"));
  CHECK(engine::blas_warning("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"));  // symlinks resolved
  CHECK_FALSE(engine::blas_warning("/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"));
  CHECK_FALSE(engine::blas_warning("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"));
  CHECK_FALSE(engine::blas_warning("/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3"));
  CHECK_FALSE(engine::blas_warning("/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3.10.3"));
  CHECK_FALSE(engine::blas_warning("/usr/lib/x86_64-linux-gnu/blas/libcblas.so.3"));
  CHECK_FALSE(engine::blas_warning("/opt/torch/lib/libtorch_cpu.so"));
  CHECK_FALSE(engine::blas_warning(""));
}

TEST_CASE("blas: the library found is a file of this machine") {
  // Empty where nothing loaded exports sgemm_ (a build without LibTorch, or one with MKL inside).
  std::string lib = engine::blas_library();
  MESSAGE("sgemm_ from: ", (lib.empty() ? "(none)" : lib));
  if (!lib.empty()) {
    CHECK(std::filesystem::path(lib).is_absolute());
    CHECK(std::filesystem::is_regular_file(lib));
    CHECK_FALSE(std::filesystem::is_symlink(lib));
  }
}

TEST_CASE("blas: OpenBLAS, where it is the BLAS, is told to use one thread") {
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  CHECK(engine::blas_one_thread() == (get != nullptr));
  if (get) {
    CHECK(get() == 1);
  } else {
    MESSAGE("no OpenBLAS in this process: ", engine::blas_library());
  }
}

TEST_CASE("engine: a backend's environment warnings, once for each backend models loaded through") {
  const std::string two_models = R"(
model a = torch "a.pt" { def echo(x: str) -> str }
model b = torch "b.pt" { def echo(x: str) -> str }
endpoint e(x: str) -> str { return b.echo(a.echo(x)) }
)";
  auto fake = std::make_shared<FakeBackend>();
  fake->environment = {"slow BLAS"};
  engine::BackendRegistry r;
  r.add(fake);
  auto e = engine::Engine::create({compile_graph(two_models), compile_graph(two_models, "again")}, r);
  REQUIRE(e.ok());
  CHECK((*e)->environment_warnings() == std::vector<std::string>{"backend `torch`: slow BLAS"});

  // No model, no backend used: nothing to say.
  auto none = engine::Engine::create({compile_graph("endpoint e(x: str) -> str { return x }")}, r);
  REQUIRE(none.ok());
  CHECK((*none)->environment_warnings().empty());

  fake->environment.clear();
  auto quiet = engine::Engine::create({compile_graph(two_models)}, r);
  REQUIRE(quiet.ok());
  CHECK((*quiet)->environment_warnings().empty());
}

}  // namespace braid::test
