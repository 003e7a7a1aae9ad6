// Mutated requests through the request handler: no input crashes it, throws out of it, or gets
// anything but a 2xx with a JSON body or a 4xx with a JSON error; and a good request still
// succeeds afterwards. The seeds cover every route and every way in: named JSON inputs of each
// type (str, int, float, bool, list, record, optional, tensors of several dtypes), KServe v2
// JSON and binary tensor data (Inference-Header-Content-Length, binary_data_size). Mutations:
// bytes (flip, insert, delete, duplicate, truncate), JSON tokens spliced in, values replaced
// inside the parsed JSON (numbers at the edges of their ranges, wrong kinds, deep arrays), the
// Inference-Header-Content-Length header, targets and methods. Deterministic (a fixed seed); BRAID_FUZZ_ITERS and
// BRAID_FUZZ_SEED change the run, as for the DSL's fuzzer.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/http/handler.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/http/in_memory.hpp"

namespace braid::test {
namespace {

namespace bhttp = boost::beast::http;
namespace json = boost::json;

const char* kGraph = R"(
model m = torch "m.pt" {
  def upper(x: str) -> str
  def count(x: str) -> int
}
endpoint shout(text: str, times: int = 1) -> {text: str, n: int} { return {text: m.upper(text), n: times} }
endpoint lengths(words: list<str>) -> list<int> { return each w in words { m.count(w) } }
endpoint vec(x: tensor<f32, [?, 4]>) -> tensor<f32, [?, 4]> { return x }
endpoint ids(x: tensor<i64, [?]>, flags: tensor<bool>, bytes: tensor<u8, [2, 2]>) -> {x: tensor<i64, [?]>, flags: tensor<bool>} {
  return {x: x, flags: flags}
}
endpoint rec(r: {a: int, b: list<float>, c: bool}, o: str? = none, f: float = 0.5) -> {r: {a: int, b: list<float>, c: bool}, f: float} {
  return {r: r, f: f}
}
)";

struct Seed {
  bhttp::verb method;
  std::string target;
  std::string body;
  std::optional<std::size_t> header_length;  // Inference-Header-Content-Length
};

std::string le32(std::uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string f32s(std::initializer_list<float> fs) {
  std::string s;
  for (float f : fs) s.append(reinterpret_cast<const char*>(&f), 4);
  return s;
}

std::vector<Seed> seeds() {
  using bhttp::verb;
  std::vector<Seed> s = {
      {verb::post, "/g/shout", R"({"text": "hi", "times": 2})", {}},
      {verb::post, "/g/lengths", R"({"words": ["a", "bb", ""]})", {}},
      {verb::post, "/g/vec", R"({"x": [[1, 2, 3, 4], [5.5, -6, 7e3, 8]]})", {}},
      {verb::post, "/g/ids", R"({"x": [1, -2, 9007199254740993], "flags": [[true, false]], "bytes": [[0, 255], [7, 8]]})", {}},
      {verb::post, "/g/rec", R"({"r": {"a": 1, "b": [1.5, 2.5], "c": true}, "o": null, "f": 2})", {}},
      {verb::post, "/v2/models/g.shout/infer",
       R"({"id": "7", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hey"]},
                                  {"name": "times", "shape": [1], "datatype": "INT64", "data": [3]}],
           "outputs": [{"name": "text"}]})",
       {}},
      {verb::post, "/v2/models/g.vec/infer",
       R"({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]})", {}},
      {verb::post, "/v2/models/g.lengths/infer",
       R"({"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "data": ["one", "three"]}]})", {}},
      {verb::post, "/v2/models/g.rec/infer",
       R"({"inputs": [{"name": "r", "shape": [1], "datatype": "BYTES", "data": ["{\"a\": 1, \"b\": [2.5], \"c\": false}"]},
                      {"name": "f", "shape": [1], "datatype": "FP64", "data": [0.25]}]})",
       {}},
      // Binary outputs (raw data after the JSON), for all outputs or per output.
      {verb::post, "/v2/models/g.ids/infer",
       R"({"inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [5, -6]},
                      {"name": "flags", "shape": [1, 2], "datatype": "BOOL", "data": [true, false]},
                      {"name": "bytes", "shape": [2, 2], "datatype": "UINT8", "data": [1, 2, 3, 4]}],
           "parameters": {"binary_data_output": true}})",
       {}},
      {verb::post, "/v2/models/g.rec/infer",
       R"({"inputs": [{"name": "r", "shape": [1], "datatype": "BYTES", "data": ["{\"a\": 1, \"b\": [2.5], \"c\": false}"]}],
           "outputs": [{"name": "r", "parameters": {"binary_data": true}}, {"name": "f", "parameters": {"binary_data": false}}]})",
       {}},
      {verb::get, "/v2", "", {}},
      {verb::get, "/v2/health/ready", "", {}},
      {verb::get, "/v2/models/g.ids", "", {}},
      {verb::get, "/v2/models/g.rec/ready", "", {}},
      {verb::get, "/graphs", "", {}},
  };
  // KServe binary tensor data: the JSON header, then each input's raw bytes.
  auto binary = [&](std::string target, std::string header, std::string data) {
    std::size_t n = header.size();
    s.push_back({bhttp::verb::post, std::move(target), header + data, n});
  };
  binary("/v2/models/g.shout/infer",
         R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}},
                        {"name": "times", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}]})",
         le32(3) + "hey" + std::string("\x02\0\0\0\0\0\0\0", 8));
  binary("/v2/models/g.vec/infer",
         R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]})",
         f32s({1.f, -2.f, 3.5f, 1e30f}));
  binary("/v2/models/g.lengths/infer",
         R"({"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 13}}]})",
         le32(2) + "ab" + le32(3) + "cde");
  return s;
}

// Values that sit at the edges of what JSON, int64, double and float32 hold, and wrong kinds.
const std::vector<std::string> kTokens = {
    "null", "true", "false", "0", "-1", "1.5", "-0.0", "1e309", "-1e309", "1e-400", "3.5e38", "9223372036854775807",
    "9223372036854775808", "-9223372036854775809", "18446744073709551616", "4294967296", "\"\"", "\"x\"", "\"\\u0000\"",
    "\"\\ud800\"", "[]", "{}", "[[]]", "[null]", "[[1,2,3,4]]", "[1,2,3]", "{\"a\":1}", "[", "]", "{", "}", ",", ":", "\"",
    "\\", "NaN", "Infinity", "-", "1e", "01", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "\"BYTES\"", "\"FP32\"", "\"INT64\"", "\"FP16\"", "\"BOOL\"", "\"UINT8\"", "\"INT8\"", "\"shape\"", "\"data\"",
    "\"binary_data_size\"", "\"inputs\"", "\"parameters\"", "\"outputs\"", "\"binary_data\"", "\"binary_data_output\"",
    "\"classification\"", "[1000000000000]", "[-1]", "[0]", "[2,0,1000000000]",
    "[4294967296,4294967296]", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
};

json::value random_json(std::mt19937_64& rng, int depth = 0) {
  switch (rng() % (depth > 3 ? 5 : 8)) {
    case 0: return nullptr;
    case 1: return static_cast<bool>(rng() % 2);
    case 2: {
      const std::int64_t edges[] = {0, 1, -1, 2, 4, 255, 256, -129, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN,
                                    (std::int64_t{1} << 53) + 1, 1000000000000};
      return edges[rng() % std::size(edges)];
    }
    case 3: {
      const double edges[] = {0.5, -0.0, 1e308, -1e308, 3.5e38, 1e-320, 65504.5, 0.1};
      return edges[rng() % std::size(edges)];
    }
    case 4: {
      const char* strs[] = {"", "x", "BYTES", "FP32", "INT64", "text", "x", "{\"a\": 1}", "[1,2]", "\xff\xfe", "null"};
      return json::string(strs[rng() % std::size(strs)]);
    }
    case 5:
    case 6: {
      json::array a;
      for (std::size_t i = 0, n = rng() % 5; i < n; ++i) a.push_back(random_json(rng, depth + 1));
      return a;
    }
    default: {
      const char* keys[] = {"name", "shape", "datatype", "data", "parameters", "binary_data_size", "a", "b", "c", "x"};
      json::object o;
      for (std::size_t i = 0, n = rng() % 4; i < n; ++i) o[keys[rng() % std::size(keys)]] = random_json(rng, depth + 1);
      return o;
    }
  }
}

// Every value in a document, to pick one to replace.
void collect(json::value& v, std::vector<json::value*>& out) {
  out.push_back(&v);
  if (v.is_array()) {
    for (auto& e : v.as_array()) collect(e, out);
  } else if (v.is_object()) {
    for (auto& kv : v.as_object()) collect(kv.value(), out);
  }
}

void mutate_bytes(std::string& s, std::mt19937_64& rng) {
  auto at = [&] { return s.empty() ? 0 : rng() % (s.size() + 1); };
  switch (rng() % 7) {
    case 0:
      if (!s.empty()) s[rng() % s.size()] ^= static_cast<char>(1u << (rng() % 8));
      break;
    case 1: s.insert(at(), 1, static_cast<char>(rng() % 256)); break;
    case 2:
      if (!s.empty()) {
        std::size_t i = rng() % s.size();
        s.erase(i, 1 + rng() % std::min<std::size_t>(16, s.size() - i));
      }
      break;
    case 3:
      if (!s.empty()) {
        std::size_t i = rng() % s.size(), n = 1 + rng() % std::min<std::size_t>(32, s.size() - i);
        s.insert(at(), s.substr(i, n));
      }
      break;
    case 4: s.resize(at()); break;
    default: s.insert(at(), kTokens[rng() % kTokens.size()]); break;
  }
}

Seed mutate(Seed s, std::mt19937_64& rng) {
  for (int round = 0, rounds = 1 + static_cast<int>(rng() % 3); round < rounds; ++round) {
    const auto pick = rng() % 10;
    if (pick < 4) {
      // Inside the JSON (the header, for binary requests): replace one value, as a client with
      // a wrong idea of the types would.
      std::size_t head = s.header_length.value_or(s.body.size());
      boost::system::error_code ec;
      json::value doc = json::parse(std::string_view(s.body).substr(0, std::min(head, s.body.size())), ec);
      if (ec) {
        mutate_bytes(s.body, rng);
        continue;
      }
      std::vector<json::value*> values;
      collect(doc, values);
      *values[rng() % values.size()] = random_json(rng);
      std::string text = json::serialize(doc);
      std::string rest = head < s.body.size() ? s.body.substr(head) : "";
      s.body = text + rest;
      if (s.header_length) s.header_length = text.size();
    } else if (pick < 8) {
      mutate_bytes(s.body, rng);
    } else if (pick == 8) {
      const std::size_t lengths[] = {0, 1, s.body.size(), s.body.size() + 1, SIZE_MAX};
      s.header_length = rng() % 4 == 0 ? std::nullopt : std::optional<std::size_t>(lengths[rng() % std::size(lengths)]);
      if (s.header_length && *s.header_length != SIZE_MAX && rng() % 2) *s.header_length = rng() % (s.body.size() + 2);
    } else {
      const char* targets[] = {"/g/shout", "/g/nope", "/v2/models/g.vec/infer", "/v2/models/g/infer", "/v2/models/.x/infer",
                               "/v2/models/g.rec", "//g//rec//", "/g/vec?x=1", "/v2/health/live", "/metrics", "/",
                               "/v2/models/g.ids/infer/more", "/%00/%ff", "/v2/models/g.lengths/ready"};
      if (rng() % 2) s.target = targets[rng() % std::size(targets)];
      const bhttp::verb verbs[] = {bhttp::verb::get, bhttp::verb::post, bhttp::verb::put, bhttp::verb::delete_};
      if (rng() % 3 == 0) s.method = verbs[rng() % std::size(verbs)];
    }
  }
  return s;
}

struct Fixture {
  std::shared_ptr<FakeBackend> fake = std::make_shared<FakeBackend>();
  std::shared_ptr<engine::Engine> engine;
  std::unique_ptr<http::Handler> handler;

  Fixture() {
    engine::BackendRegistry r;
    r.add(fake);
    engine = engine::Engine::create({compile_graph(kGraph, "g")}, r, {2}).value();
    engine->warm_up();
    handler = std::make_unique<http::Handler>(engine, http::HandlerOptions{16});
  }

  // The response, or what escaped the handler.
  std::variant<http::Response, std::string> call(const Seed& s, bool raw_length = false) {
    http::Request req{s.method, s.target, 11};
    if (s.header_length) {
      req.set("Inference-Header-Content-Length",
              raw_length ? std::string("-1") : std::to_string(*s.header_length));
    }
    req.body() = s.body;
    req.prepare_payload();
    return handle_in_memory(*handler, std::move(req));
  }
};

// What is wrong with a response to any request, or empty.
std::string problem(const http::Response& r, const Seed& s) {
  const unsigned status = r.result_int();
  const bool ok = status == 200;
  if (!ok && status != 400 && status != 404 && status != 405) return fmt::format("status {}: {}", status, r.body());
  if (r.has_content_length() && r[bhttp::field::content_length] != std::to_string(r.body().size())) {
    return "Content-Length does not match the body";
  }
  if (s.target == "/metrics" && ok) return r.body().find("braid_http_responses_total") == std::string::npos ? "metrics text" : "";
  // With binary outputs, the JSON part is Inference-Header-Content-Length bytes and the rest is
  // the outputs' data, exactly as long as their `binary_data_size`s say.
  std::string_view text = r.body();
  std::size_t binary = 0;
  if (ok && r.count("Inference-Header-Content-Length")) {
    if (r[bhttp::field::content_type] != "application/octet-stream") return "binary outputs without application/octet-stream";
    std::size_t head = std::stoul(std::string(r["Inference-Header-Content-Length"]));
    if (head > text.size()) return "Inference-Header-Content-Length past the body";
    binary = text.size() - head;
    text = text.substr(0, head);
  }
  boost::system::error_code ec;
  json::value body = json::parse(text, ec);
  if (ec) return fmt::format("status {} with a body that is not JSON: {}", status, r.body().substr(0, 200));
  if (!r.count("Inference-Header-Content-Length") && r[bhttp::field::content_type] != "application/json") {
    return "a JSON body without Content-Type application/json";
  }
  if (!ok) {
    const json::object* o = body.if_object();
    if (!o || !o->if_contains("error") || !o->at("error").is_string() || o->at("error").as_string().empty() ||
        !o->if_contains("code") || !o->at("code").is_string()) {
      return fmt::format("status {} without a JSON error message: {}", status, r.body().substr(0, 200));
    }
  } else if (s.method == bhttp::verb::post && s.target.find("/infer") != std::string::npos) {
    const json::object* o = body.if_object();
    if (!o || !o->if_contains("outputs") || !o->at("outputs").is_array()) return "a KServe answer without `outputs`";
    std::size_t sizes = 0;
    for (const auto& out : o->at("outputs").as_array()) {
      const json::value* p = out.as_object().if_contains("parameters");
      if (p) sizes += static_cast<std::size_t>(p->at("binary_data_size").as_int64());
    }
    if (sizes != binary) return fmt::format("binary outputs of {} bytes in all, but {} bytes follow the JSON", sizes, binary);
  }
  return {};
}

std::string shown(const Seed& s) {
  std::string body = s.body.substr(0, 400);
  for (char& c : body) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n') c = '.';
  }
  return fmt::format("{} {} (header length {}): {}", std::string(bhttp::to_string(s.method)), s.target,
                     s.header_length ? std::to_string(*s.header_length) : "none", body);
}

std::size_t env_number(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("fuzz: every seed is answered 200 as it stands") {
    Fixture f;
    for (const auto& s : seeds()) {
      CAPTURE(shown(s));
      auto r = f.call(s);
      if (const auto* escaped = std::get_if<std::string>(&r)) FAIL(*escaped);
      const auto& res = std::get<http::Response>(r);
      CHECK_MESSAGE(res.result_int() == 200, res.body());
      CHECK(problem(res, s).empty());
    }
  }

  TEST_CASE("fuzz: binary BYTES that are not UTF-8 come back as JSON (found by the fuzzer)") {
    // A str may hold any bytes (KServe BYTES are bytes); the JSON answer replaces what is not
    // UTF-8 with U+FFFD instead of writing a body no client can parse.
    Fixture f;
    std::string header = R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}}]})";
    Seed s{bhttp::verb::post, "/v2/models/g.shout/infer", header + le32(3) + "h\xFFy", header.size()};
    auto r = f.call(s);
    REQUIRE(std::holds_alternative<http::Response>(r));
    const auto& res = std::get<http::Response>(r);
    CHECK(res.result_int() == 200);
    CHECK(problem(res, s).empty());
    CHECK(json::parse(res.body()).at("outputs").at(0).at("data").at(0) == json::value("H\xEF\xBF\xBDY"));
  }

  TEST_CASE("fuzz: mutated requests get a 2xx or a 4xx with a JSON error, and service carries on") {
    Fixture f;
    const auto base = seeds();
    const std::size_t iters = env_number("BRAID_FUZZ_ITERS", 20000);
    const std::uint64_t seed = env_number("BRAID_FUZZ_SEED", 0x6272616964ULL);
    std::mt19937_64 rng(seed);
    std::map<unsigned, std::size_t> statuses;
    std::size_t failures = 0, sent = 0;
    for (std::size_t i = 0; i < iters && failures < 10; ++i, ++sent) {
      Seed s = mutate(base[rng() % base.size()], rng);
      auto r = f.call(s);
      std::string p = std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : problem(std::get<http::Response>(r), s);
      if (std::holds_alternative<http::Response>(r)) ++statuses[std::get<http::Response>(r).result_int()];
      if (!p.empty()) {
        ++failures;
        FAIL_CHECK(fmt::format("iteration {} (seed {:#x}): {}\n  request: {}", i, seed, p, shown(s)));
      }
    }
    std::string summary;
    for (auto [code, n] : statuses) summary += fmt::format(" {}: {}", code, n);
    MESSAGE(fmt::format("{} mutated requests, by status:{}", sent, summary));
    // The mutations reach both sides: some still succeed, most are refused.
    CHECK(statuses[200] > iters / 50);
    CHECK(statuses[400] > iters / 4);
    // A header length that is not a number is refused before anything is read.
    auto bad = f.call(base.back(), true);
    REQUIRE(std::holds_alternative<http::Response>(bad));
    CHECK(std::get<http::Response>(bad).result_int() == 400);
    // Nothing was left in flight, and a good request still succeeds.
    CHECK(f.handler->in_flight() == 0);
    for (const auto& s : base) {
      auto r = f.call(s);
      REQUIRE(std::holds_alternative<http::Response>(r));
      CHECK_MESSAGE(std::get<http::Response>(r).result_int() == 200, shown(s));
    }
    CHECK(f.handler->in_flight() == 0);
  }
}

}  // namespace braid::test
