// The request handler's KServe v2 routes without a network: metadata, infer (JSON and binary
// tensor data both ways), statistics, what a request asks of its answer, its timeout.
#include <doctest/doctest.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "tests/http/handler_fixture.hpp"

namespace braid::test {
namespace {

using namespace handler_fixture;

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("KServe v2: metadata and infer with BYTES, INT64 and outputs per record field") {
    Fixture f;
    auto meta = f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout"));
    CHECK(meta == json::parse(R"({"name": "g.shout", "versions": ["1"], "platform": "braid",
      "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "optional": false},
                 {"name": "times", "datatype": "INT64", "shape": [1], "optional": true}],
      "outputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}, {"name": "n", "datatype": "INT64", "shape": [1]}]})"));
    auto r = f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                    R"({"id": "7", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hey"]},
                                             {"name": "times", "shape": [1], "datatype": "INT64", "data": [3]}]})");
    CHECK(r.result_int() == 200);
    CHECK(f.body_of(r) == json::parse(R"({"model_name": "g.shout", "model_version": "1", "id": "7",
      "outputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["HEY"]},
                  {"name": "n", "datatype": "INT64", "shape": [1], "data": [3]}]})"));
    // The same with the protocol's optional version in the path: a graph's endpoint has one, `1`.
    CHECK(f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout/versions/1")) == meta);
    auto v = f.call(bhttp::verb::post, "/v2/models/g.shout/versions/1/infer",
                    R"({"id": "8", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["ho"]}]})");
    CHECK(v.result_int() == 200);
    CHECK(f.body_of(v).at("outputs").as_array()[0].at("data") == json::parse(R"(["HO"])"));
    // A list input is a 1-D tensor; a list output too.
    auto l = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                    R"({"inputs": [{"name": "words", "shape": [3], "datatype": "BYTES", "data": ["a", "bb", "ccc"]}],
                        "outputs": [{"name": "output"}]})");
    CHECK(f.body_of(l) == json::parse(R"({"model_name": "g.lengths", "model_version": "1",
      "outputs": [{"name": "output", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]}]})"));
    // Errors say which input and why.
    auto bad = f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                      R"({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]})");
    CHECK(bad.result_int() == 400);
    CHECK(f.body_of(bad).at("error") == "input `text`: expected datatype BYTES, found FP32");
    auto shape = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                        R"({"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "data": ["a"]}]})");
    CHECK(f.body_of(shape).at("error") == "input `words`: shape holds 2 elements but `data` has 1");
    CHECK(f.call(bhttp::verb::post, "/v2/models/g.shout/infer", "{}").result_int() == 400);
    // Shapes a client could use to make the server loop or allocate without end.
    auto overflow = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                           R"({"inputs": [{"name": "words", "shape": [4294967296, 4294967296], "datatype": "BYTES", "data": []}]})");
    CHECK(f.body_of(overflow).at("error") == "input `words`: the shape's size overflows");
    std::string deep = R"({"inputs": [{"name": "words", "datatype": "BYTES", "data": ["a"], "shape": [1)";
    for (int i = 0; i < 1000; ++i) deep += ",1";
    auto rank = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer", deep + "]}]}");
    CHECK(f.body_of(rank).at("error") == "input `words`: shape has more than 32 dimensions");
    auto empty = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                        R"({"inputs": [{"name": "words", "shape": [1000000000000000, 0], "datatype": "BYTES", "data": []}]})");
    CHECK(empty.result_int() == 200);
    CHECK(f.body_of(empty).at("outputs").as_array()[0].at("shape") == json::parse("[0]"));
  }

  TEST_CASE("KServe v2 statistics (Triton's extension): requests answered and failed, their time, the calls' time") {
    Fixture f;
    CHECK(f.body_of(f.call(bhttp::verb::get, "/v2")).at("extensions") == json::parse(R"(["statistics"])"));
    auto none = f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout/stats")).at("model_stats").as_array();
    REQUIRE(none.size() == 1);
    CHECK(none[0].at("inference_count") == 0);
    CHECK(none[0].at("last_inference") == 0);
    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (int i = 0; i < 3; ++i) CHECK(f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})").result_int() == 200);
    CHECK(f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                 R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["y"]}]})").result_int() == 200);
    CHECK(f.call(bhttp::verb::post, "/g/broken", R"({"x": "x"})").result_int() == 500);

    auto shout = f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout/versions/1/stats")).at("model_stats").as_array();
    REQUIRE(shout.size() == 1);
    const auto& s = shout[0].as_object();
    CHECK(s.at("name") == "g.shout");
    CHECK(s.at("version") == "1");
    CHECK(s.at("inference_count") == 4);  // both routes count
    CHECK(s.at("execution_count") == 4);
    CHECK(s.at("last_inference").to_number<std::int64_t>() >= before);
    const auto& st = s.at("inference_stats").as_object();
    CHECK(st.at("success").at("count") == 4);
    CHECK(st.at("success").at("ns").to_number<std::int64_t>() > 0);
    CHECK(st.at("fail").at("count") == 0);
    CHECK(st.at("compute_infer").at("count") == 4);
    CHECK(st.at("compute_infer").at("ns").to_number<std::int64_t>() > 0);  // m.upper ran four times
    CHECK(st.at("compute_infer").at("ns").to_number<std::int64_t>() <= st.at("success").at("ns").to_number<std::int64_t>());
    CHECK(st.at("cache_hit").at("count") == 0);

    auto all = f.body_of(f.call(bhttp::verb::get, "/v2/models/stats")).at("model_stats").as_array();
    CHECK(all.size() == 11);  // every endpoint
    bool broken = false;
    for (const auto& m : all) {
      if (m.at("name") != "g.broken") continue;
      broken = true;
      CHECK(m.at("inference_count") == 0);
      CHECK(m.at("inference_stats").at("fail").at("count") == 1);
      CHECK(m.at("inference_stats").at("fail").at("ns").to_number<std::int64_t>() > 0);
    }
    CHECK(broken);
    CHECK(f.call(bhttp::verb::post, "/v2/models/g.shout/stats", "{}").result_int() == 405);
    CHECK(f.call(bhttp::verb::get, "/v2/models/g.nope/stats").result_int() == 404);
    CHECK(f.call(bhttp::verb::get, "/v2/models/g.shout/versions/2/stats").result_int() == 404);
  }

  TEST_CASE("KServe v2 binary tensor data, as Triton's clients send by default") {
    Fixture f;
    // JSON header, then the raw data of each input: BYTES elements are a 4-byte little-endian
    // length and the bytes; INT64 is 8 little-endian bytes.
    std::string header = R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}},
                                         {"name": "times", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}]})";
    std::string body = header;
    body += std::string("\x03\x00\x00\x00hey", 7);
    body += std::string("\x02\x00\x00\x00\x00\x00\x00\x00", 8);
    http::Request req{bhttp::verb::post, "/v2/models/g.shout/infer", 11};
    req.set("Inference-Header-Content-Length", std::to_string(header.size()));
    req.body() = body;
    req.prepare_payload();
    auto out = f.call(std::move(req));
    CHECK(out.result_int() == 200);
    CHECK(f.body_of(out) == json::parse(R"({"model_name": "g.shout", "model_version": "1",
      "outputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["HEY"]},
                  {"name": "n", "datatype": "INT64", "shape": [1], "data": [2]}]})"));
  }

  TEST_CASE("KServe v2 binary outputs: raw data after the JSON, per output or for all, as Triton's clients ask") {
    Fixture f;
    const std::string inputs = R"("inputs": [
        {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.5, -2, 3, 4.25]},
        {"name": "words", "shape": [2], "datatype": "BYTES", "data": ["hi", "héllo"]},
        {"name": "ok", "shape": [1], "datatype": "BOOL", "data": [true]},
        {"name": "f", "shape": [1], "datatype": "FP64", "data": [0.1]}])";
    // The JSON part (Inference-Header-Content-Length bytes), then each binary output's data.
    struct Split {
      json::object head;
      std::string data;
    };
    auto split = [](const http::Response& r) {
      REQUIRE(r.result_int() == 200);
      REQUIRE(r.count("Inference-Header-Content-Length") == 1);
      CHECK(r[bhttp::field::content_type] == "application/octet-stream");
      std::size_t n = std::stoul(std::string(r["Inference-Header-Content-Length"]));
      REQUIRE(n <= r.body().size());
      return Split{json::parse(r.body().substr(0, n)).as_object(), r.body().substr(n)};
    };
    auto le = [](auto v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); };
    auto floats = le(1.5f) + le(-2.0f) + le(3.0f) + le(4.25f);
    auto words = le(std::uint32_t{2}) + "hi" + le(std::uint32_t{6}) + "h\xC3\xA9llo";

    // No outputs named and `binary_data_output` (what tritonclient sends by default): all binary,
    // in the result's field order.
    auto all = split(f.call(bhttp::verb::post, "/v2/models/g.mixed/infer",
                            "{" + inputs + R"(, "parameters": {"binary_data_output": true}})"));
    const auto& outs = all.head.at("outputs").as_array();
    REQUIRE(outs.size() == 5);
    CHECK(outs[0] == json::parse(R"({"name": "x", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}})"));
    CHECK(outs[1] == json::parse(R"({"name": "words", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 16}})"));
    CHECK(outs[2] == json::parse(R"({"name": "ok", "datatype": "BOOL", "shape": [1], "parameters": {"binary_data_size": 1}})"));
    CHECK(outs[3] == json::parse(R"({"name": "f", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}})"));
    CHECK(outs[4] == json::parse(R"({"name": "r", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 11}})"));
    CHECK(all.data == floats + words + std::string(1, '\1') + le(0.1) + le(std::uint32_t{7}) + R"({"a":7})");

    // Named outputs: only those, each as it asks (binary_data on one overrides the default).
    auto some = split(f.call(bhttp::verb::post, "/v2/models/g.mixed/infer", "{" + inputs + R"(,
        "parameters": {"binary_data_output": true},
        "outputs": [{"name": "words", "parameters": {"binary_data": false}}, {"name": "x"}]})"));
    CHECK(some.head.at("outputs") == json::parse(R"([
        {"name": "x", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}},
        {"name": "words", "datatype": "BYTES", "shape": [2], "data": ["hi", "héllo"]}])"));
    CHECK(some.data == floats);

    // Nothing binary asked: plain JSON, no header.
    auto plain = f.call(bhttp::verb::post, "/v2/models/g.mixed/infer",
                        "{" + inputs + R"(, "outputs": [{"name": "f", "parameters": {"binary_data": false}}]})");
    CHECK(plain.result_int() == 200);
    CHECK(plain.count("Inference-Header-Content-Length") == 0);
    CHECK(plain[bhttp::field::content_type] == "application/json");
    CHECK(f.body_of(plain).at("outputs") == json::parse(R"([{"name": "f", "datatype": "FP64", "shape": [1], "data": [0.1]}])"));

    // A scalar result is the output `output`; a list of ints is INT64 elements.
    auto l = split(f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                          R"({"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "data": ["a", "bbb"]}],
                              "outputs": [{"name": "output", "parameters": {"binary_data": true}}]})"));
    CHECK(l.head.at("outputs").as_array()[0].at("shape") == json::parse("[2]"));
    CHECK(l.data == le(std::int64_t{1}) + le(std::int64_t{3}));
  }

  TEST_CASE("KServe v2 binary tensor inputs become tensors: copied in their own layout, or converted from another datatype") {
    Fixture f;
    auto le = [](auto v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); };
    // x (tensor<f32, [?, 2]>) sent as `datatype` with `data`, answered as binary FP32.
    auto echo = [&](const std::string& datatype, const std::string& shape, const std::string& data) {
      std::string header = fmt::format(R"({{"inputs": [
          {{"name": "x", "shape": {}, "datatype": "{}", "parameters": {{"binary_data_size": {}}}}},
          {{"name": "words", "shape": [1], "datatype": "BYTES", "data": ["w"]}},
          {{"name": "ok", "shape": [1], "datatype": "BOOL", "data": [false]}},
          {{"name": "f", "shape": [1], "datatype": "FP64", "data": [1]}}],
          "outputs": [{{"name": "x", "parameters": {{"binary_data": true}}}}]}})",
                                       shape, datatype, data.size());
      http::Request req{bhttp::verb::post, "/v2/models/g.mixed/infer", 11};
      req.set("Inference-Header-Content-Length", std::to_string(header.size()));
      req.body() = header + data;
      req.prepare_payload();
      return f.call(std::move(req));
    };
    auto tail = [](const http::Response& r) {
      std::size_t n = std::stoul(std::string(r["Inference-Header-Content-Length"]));
      return r.body().substr(n);
    };
    const std::string floats = le(1.5f) + le(-2.0f) + le(3.0f) + le(4.25f);
    auto same = echo("FP32", "[2, 2]", floats);
    REQUIRE(same.result_int() == 200);
    CHECK(tail(same) == floats);
    auto ints = echo("INT32", "[2, 2]", le(std::int32_t{1}) + le(std::int32_t{-2}) + le(std::int32_t{3}) + le(std::int32_t{1 << 20}));
    REQUIRE(ints.result_int() == 200);
    CHECK(tail(ints) == le(1.0f) + le(-2.0f) + le(3.0f) + le(1048576.0f));
    // FP16 1.5, -2, 65504 (the largest half), 2^-24 (the smallest subnormal).
    auto half = echo("FP16", "[2, 2]",
                     le(std::uint16_t{0x3e00}) + le(std::uint16_t{0xc000}) + le(std::uint16_t{0x7bff}) + le(std::uint16_t{0x0001}));
    REQUIRE(half.result_int() == 200);
    CHECK(tail(half) == le(1.5f) + le(-2.0f) + le(65504.0f) + le(5.9604644775390625e-08f));
    auto bf16 = echo("BF16", "[1, 2]", le(std::uint16_t{0x3fc0}) + le(std::uint16_t{0xc080}));
    REQUIRE(bf16.result_int() == 200);
    CHECK(tail(bf16) == le(1.5f) + le(-4.0f));
    // What does not fit is a 400 naming the input.
    struct Bad {
      std::string datatype, shape, data, error;
    };
    for (const auto& b : std::vector<Bad>{
             {"FP32", "[2, 2]", floats.substr(0, 15), "input `x`: 15 bytes of FP32 data"},
             {"FP32", "[3, 2]", floats, "input `x`: shape holds 6 elements but `data` has 4"},
             {"FP32", "[4]", floats, "input `x`: expected `tensor<f32, [?, 2]>`, found shape [4]"},
             {"FP32", "[1, 4]", floats, "input `x`: expected `tensor<f32, [?, 2]>`, found shape [1, 4]"},
             {"BYTES", "[1]", le(std::uint32_t{1}) + "a", "input `x`: expected datatype FP32, found BYTES"},
         }) {
      INFO(b.error);
      auto r = echo(b.datatype, b.shape, b.data);
      CHECK(r.result_int() == 400);
      CHECK(f.body_of(r).at("error") == json::value(b.error));
    }
  }

  TEST_CASE("KServe v2: integers stay exact past 2^53 both ways; elements must be of the datatype they are sent as") {
    Fixture f;
    auto infer = [&](const std::string& input) {
      return f.call(bhttp::verb::post, "/v2/models/g.ints/infer", fmt::format(R"({{"inputs": [{}]}})", input));
    };
    auto r = infer(R"({"name": "x", "shape": [3], "datatype": "INT64", "data": [9223372036854775807, -9223372036854775808, 9007199254740993]})");
    REQUIRE(r.result_int() == 200);
    CHECK(f.body_of(r).at("outputs").at(0).at("data") == json::parse("[9223372036854775807, -9223372036854775808, 9007199254740993]"));
    auto le = [](auto v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); };
    struct Bad {
      std::string input, raw, error;
    };
    for (const auto& b : std::vector<Bad>{
             {R"({"name": "x", "shape": [3], "datatype": "INT8", "data": [1, 2, 300]})", "", "input `x`: element 2 is 300, outside INT8's range"},
             {R"({"name": "x", "shape": [2], "datatype": "UINT8", "data": [255, -1]})", "", "input `x`: element 1 is -1, outside UINT8's range"},
             {R"({"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]})", "", "input `x`: element 0 is not an integer"},
             {R"({"name": "x", "shape": [1], "datatype": "UINT64", "data": [18446744073709551615]})", "",
              "input `x`: element 0 (18446744073709551615) does not fit in i64"},
             {R"({"name": "x", "shape": [1], "datatype": "UINT64", "parameters": {"binary_data_size": 8}})", le(std::uint64_t{1} << 63),
              "input `x`: element 0 (9223372036854775808) does not fit in i64"},
             {R"({"name": "x", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}})", le(std::int32_t{7}) + le(std::int32_t{-7}), ""},
         }) {
      INFO(b.error);
      http::Request req{bhttp::verb::post, "/v2/models/g.ints/infer", 11};
      const std::string header = fmt::format(R"({{"inputs": [{}]}})", b.input);
      if (!b.raw.empty()) req.set("Inference-Header-Content-Length", std::to_string(header.size()));
      req.body() = header + b.raw;
      req.prepare_payload();
      auto bad = f.call(std::move(req));
      if (b.error.empty()) {  // converted from its own datatype, exactly
        REQUIRE(bad.result_int() == 200);
        CHECK(f.body_of(bad).at("outputs").at(0).at("data") == json::parse("[7, -7]"));
        continue;
      }
      CHECK(bad.result_int() == 400);
      CHECK(f.body_of(bad).at("error") == json::value(b.error));
    }
  }

  TEST_CASE("KServe v2: what a request asks of its answer is checked before anything runs") {
    Fixture f;
    const std::string inputs = R"("inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hey"]}])";
    struct Case {
      std::string tail;
      std::string error;
    };
    std::vector<Case> cases = {
        {R"("outputs": [{"name": "nope"}])", "no output `nope`; the outputs of g.shout are `text`, `n`"},
        {R"("outputs": [{"nom": "text"}])", "each of `outputs` must be an object with a `name`"},
        {R"("outputs": {"name": "text"})", "`outputs` must be an array of objects naming outputs"},
        {R"("outputs": [{"name": "n", "parameters": {"binary_data": 1}}])", "output `n`: `binary_data` must be true or false"},
        {R"("outputs": [{"name": "n", "parameters": {"classification": 2}}])",
         "output `n`: classification outputs are not supported; ask for the output itself"},
        {R"("outputs": [{"name": "n", "parameters": []}])", "output `n`: `parameters` must be an object"},
        {R"("parameters": {"binary_data_output": "yes"})", "the request's parameters: `binary_data_output` must be true or false"},
        {R"("parameters": {"timeout": -1})",
         "the request's parameters: `timeout` must be a whole number of microseconds from 0 (none) to 24h"},
        {R"("parameters": {"timeout": 1.5})",
         "the request's parameters: `timeout` must be a whole number of microseconds from 0 (none) to 24h"},
    };
    for (const auto& c : cases) {
      INFO(c.tail);
      auto r = f.call(bhttp::verb::post, "/v2/models/g.shout/infer", "{" + inputs + ", " + c.tail + "}");
      CHECK(r.result_int() == 400);
      CHECK(f.body_of(r).at("error") == json::value(c.error));
      CHECK(f.body_of(r).at("code") == "invalid_input");
    }
    CHECK(f.fake->stats("m").calls == 0);  // none of them ran
    // Unknown parameters (Triton's `priority`, a client's own) are left alone.
    auto ok = f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                     "{" + inputs + R"(, "parameters": {"priority": 1, "mine": "x", "timeout": 0}})");
    CHECK(ok.result_int() == 200);
  }

  TEST_CASE("KServe v2: an input given twice, or with both data and binary data, is refused; an empty tensor keeps its shape") {
    Fixture f;
    const std::string rest = R"({"name": "words", "shape": [1], "datatype": "BYTES", "data": ["w"]},
        {"name": "ok", "shape": [1], "datatype": "BOOL", "data": [false]},
        {"name": "f", "shape": [1], "datatype": "FP64", "data": [1]})";
    auto twice = f.call(bhttp::verb::post, "/v2/models/g.mixed/infer",
                        R"({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
                                       {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [3, 4]}, )" + rest + "]}");
    CHECK(twice.result_int() == 400);
    CHECK(f.body_of(twice).at("error") == "input `x` is given twice");
    // JSON `data` of a shape with no elements: the tensor has that shape, not [0].
    auto empty = f.call(bhttp::verb::post, "/v2/models/g.mixed/infer",
                        R"({"inputs": [{"name": "x", "shape": [0, 2], "datatype": "FP32", "data": []}, )" + rest + "]}");
    REQUIRE(empty.result_int() == 200);
    bool found = false;
    const json::value answer = f.body_of(empty);
    for (const auto& o : answer.at("outputs").as_array()) {
      if (o.at("name") != "x") continue;
      found = true;
      CHECK(o.at("shape") == json::array{0, 2});
    }
    CHECK(found);
    const std::string header = R"({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2],
        "parameters": {"binary_data_size": 8}}, )" + rest + "]}";
    http::Request req{bhttp::verb::post, "/v2/models/g.mixed/infer", 11};
    req.set("Inference-Header-Content-Length", std::to_string(header.size()));
    req.body() = header + std::string(8, '\0');
    req.prepare_payload();
    auto both = f.call(std::move(req));
    CHECK(both.result_int() == 400);
    CHECK(f.body_of(both).at("error") == "input `x` has both `data` and binary data (`binary_data_size`): one or the other");
    // A size that is not a number of bytes says so; one past the body says by how much.
    auto sized = [&](const std::string& size, std::size_t bytes) {
      const std::string head = R"({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": )" +
                               size + "}}, " + rest + "]}";
      http::Request r{bhttp::verb::post, "/v2/models/g.mixed/infer", 11};
      r.set("Inference-Header-Content-Length", std::to_string(head.size()));
      r.body() = head + std::string(bytes, '\0');
      r.prepare_payload();
      return f.call(std::move(r));
    };
    auto text = sized(R"("8")", 8);
    CHECK(text.result_int() == 400);
    CHECK(f.body_of(text).at("error") == "input `x`: binary_data_size must be a whole number of bytes from 0");
    auto past = sized("16", 8);
    CHECK(past.result_int() == 400);
    CHECK(f.body_of(past).at("error") == "input `x`: binary_data_size 16 runs past the body (8 bytes of binary data left)");
  }

  TEST_CASE("KServe v2: the request's parameters.timeout (microseconds) is its deadline") {
    Fixture f;
    auto r = f.call(bhttp::verb::post, "/v2/models/g.wait/infer",
                    R"({"inputs": [{"name": "key", "shape": [1], "datatype": "BYTES", "data": ["never"]}],
                        "parameters": {"timeout": 30000}})");
    CHECK(r.result_int() == 504);
    CHECK(f.body_of(r).at("error") == "deadline of 30 ms passed");
    CHECK(f.fake->wait_for("m", [](const auto& s) { return s.cancelled == 1 && s.running == 0; }));
  }
}

}  // namespace braid::test
