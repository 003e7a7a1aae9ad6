#pragma once
// Server settings: working defaults, a TOML file (toml++) over them, command-line flags over
// that. docs/http.md lists every setting.
//
//   [server]
//   host = "127.0.0.1"      port = 8000       io_threads = 1
//   max_body = "1MiB"       max_header = "8KiB"
//   read_timeout = "10s"    idle_timeout = "60s"   write_timeout = "10s"
//   max_in_flight = 1024    drain_timeout = "10s"
//   allow_reload = false    # POST /admin/reload (SIGHUP reloads either way)
//   access_log = false      # a line per request on stderr
//   [engine]
//   cpu_threads = 0         # 0: all hardware threads
//   cuda_streams = 4        cuda_threads = 0   # per device; 0: one thread per stream
//   cuda_completion = "callback"               # or "poll" (engine::CudaCompletion)
//   [models]
//   paths = ["/srv/models"]

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/device.hpp"
#include "engine/status.hpp"

namespace braid::http {

struct ServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  unsigned io_threads = 1;
  std::size_t max_body = 1 << 20;
  std::size_t max_header = 8 << 10;
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds write_timeout{10'000};
  std::size_t max_in_flight = 1024;
  std::chrono::milliseconds drain_timeout{10'000};
  bool allow_reload = false;  // POST /admin/reload reloads the graphs (SIGHUP always does)
  bool access_log = false;    // a line per answered request on stderr (Server::set_access_log)
  unsigned cpu_threads = 0;
  unsigned cuda_streams = 4;  // streams per CUDA device (models placed `on cuda`)
  unsigned cuda_threads = 0;  // threads per device enqueuing work; 0: one per stream
  engine::CudaCompletion cuda_completion = engine::CudaCompletion::Callback;
  std::vector<std::string> model_paths;
};

// Reads a TOML file over `config`. Errors name the file, the key and what is wrong.
engine::Result<ServerConfig> load_config(const std::string& path, ServerConfig config);

// "10s", "250ms", "1.5s" / "1MiB", "512KB", "100" (bytes). For the TOML file and the flags.
engine::Result<std::chrono::milliseconds> parse_duration(const std::string& text);
engine::Result<std::size_t> parse_size(const std::string& text);

}  // namespace braid::http
