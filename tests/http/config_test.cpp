// Server settings from TOML: values, units, and errors that name the key.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include <unistd.h>

#include "engine/http/config.hpp"

namespace braid::test {
namespace {

std::string write_temp(const std::string& text) {
  char name[] = "/tmp/braid-config-XXXXXX";
  int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(name) << text;
  return name;
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("a TOML file over the defaults, with units") {
    auto path = write_temp(R"(
[server]
host = "0.0.0.0"
port = 9000
max_body = "2MiB"
read_timeout = "250ms"
idle_timeout = 30
max_in_flight = 64
allow_reload = true
access_log = true
[engine]
cpu_threads = 3
cuda_streams = 8
cuda_completion = "poll"
[models]
paths = ["/a", "/b"]
)");
    auto c = http::load_config(path, {});
    std::remove(path.c_str());
    REQUIRE_MESSAGE(c, (c ? "" : c.error().message));
    CHECK(c->host == "0.0.0.0");
    CHECK(c->port == 9000);
    CHECK(c->max_body == 2u << 20);
    CHECK(c->read_timeout == std::chrono::milliseconds(250));
    CHECK(c->idle_timeout == std::chrono::seconds(30));
    CHECK(c->max_in_flight == 64);
    CHECK(c->allow_reload);
    CHECK(c->access_log);
    CHECK(c->cpu_threads == 3);
    CHECK(c->cuda_streams == 8);
    CHECK(c->cuda_completion == engine::CudaCompletion::Poll);
    CHECK(c->model_paths == std::vector<std::string>{"/a", "/b"});
    CHECK(c->write_timeout == std::chrono::seconds(10));  // untouched default
  }

  TEST_CASE("mistakes name the file and the key") {
    struct Case {
      const char* text;
      const char* message;
    };
    const Case cases[] = {
        {"[server]\nprot = 1\n", "`server.prot`: unknown setting"},
        {"[server]\nport = 70000\n", "`server.port`: must be between 0 and 65535"},
        {"[server]\nread_timeout = \"10 seconds\"\n", "`server.read_timeout`: `10 seconds` is not a duration"},
        {"[server]\nmax_body = \"lots\"\n", "`server.max_body`: `lots` is not a size"},
        {"[server]\nhost = 5\n", "`server.host`: expected a string"},
        {"[server]\nallow_reload = 1\n", "`server.allow_reload`: expected true or false"},
        {"[server]\naccess_log = \"yes\"\n", "`server.access_log`: expected true or false"},
        {"[engine]\ncuda_completion = \"spin\"\n", "`engine.cuda_completion`: expected \"callback\" or \"poll\""},
        {"[server]\nmax_body = 0\n", "`server.max_body`: must be at least 1 byte"},
        {"[server]\nmax_header = \"1\"\n", "`server.max_header`: must be at least 1KiB"},
        {"[server]\nmax_body = \"17179869184GiB\"\n", "`server.max_body`: `17179869184GiB` is larger than braid counts (8EiB)"},
        {"[server]\nread_timeout = 0\n", "`server.read_timeout`: must be longer than 0"},
        {"[server]\nwrite_timeout = \"0ms\"\n", "`server.write_timeout`: must be longer than 0"},
        {"[server\n", ":1:"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.text);
      auto path = write_temp(c.text);
      auto r = http::load_config(path, {});
      std::remove(path.c_str());
      REQUIRE(!r);
      CHECK_MESSAGE(r.error().message.find(c.message) != std::string::npos, r.error().message);
      CHECK(r.error().message.find(path) == 0);
    }
    // A settings file is a file: not a directory (read as if empty before), nor a pipe.
    auto dir = http::load_config("/tmp", {});
    REQUIRE_FALSE(dir);
    CHECK(dir.error().message == "/tmp: not a regular file");
    auto missing = http::load_config("/nonexistent/braid.toml", {});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message == "/nonexistent/braid.toml: no such file");
  }
}

}  // namespace braid::test
