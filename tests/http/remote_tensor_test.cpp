// Remote models and tensors: a remote call's tensors travel as raw bytes after the JSON, both
// ways (binary tensors, docs/http.md), so that they arrive bit for bit and without a text form
// in between. Against the real server (graph `up`), and a scripted peer that shows the wire.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "tests/http/remote_support.hpp"

namespace braid::test {
using namespace remote_support;

namespace {

template <typename T>
Value tensor_of(std::vector<T> xs, std::vector<std::int64_t> shape, dsl::DType d) {
  return Value(engine::Tensor::from_bytes(xs.data(), std::move(shape), d));
}

std::string bytes_of(const Value& v) {
  const auto& t = v.as_tensor();
  return std::string(static_cast<const char*>(t.host_data()), static_cast<std::size_t>(t.numel()) * engine::dtype_size(t.dtype));
}

const char* kPass = R"(
  def pass(x: tensor<f32, [?, ?]>, ids: list<tensor<i64, [?]>>) -> {x: tensor<f32, [?, ?]>, ids: list<tensor<i64, [?]>>}
  def shout(text: str) -> str
}
endpoint relay(x: tensor<f32, [?, ?]>, ids: list<tensor<i64, [?]>>) -> {x: tensor<f32, [?, ?]>, ids: list<tensor<i64, [?]>>} {
  return up.pass(x, ids)
}
endpoint e(t: str) -> str { return up.shout(t) }
)";

std::string binary_answer(std::string_view json, std::string_view data, std::string_view json_size) {
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: {}\r\n"
                     "Content-Length: {}\r\n\r\n{}{}",
                     json_size, json.size() + data.size(), json, data);
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("remote tensors: what JSON cannot carry arrives bit for bit across two servers") {
    Upstream up;
    Front front(up.port, kPass);
    // NaN (JSON has none), -0.0, the largest float, and an i64 that doubles cannot hold.
    Value x = tensor_of<float>({std::numeric_limits<float>::quiet_NaN(), -0.0f, 3.4e38f, 1.0f / 3}, {2, 2}, dsl::DType::F32);
    Value big = tensor_of<std::int64_t>({(std::int64_t{1} << 53) + 1, -1, 0}, {3}, dsl::DType::I64);
    Value none = tensor_of<std::int64_t>({}, {0}, dsl::DType::I64);
    auto r = front.run("relay", {x, Value::list({big, none})});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    const Value* rx = r->field("x");
    REQUIRE(rx);
    CHECK(rx->as_tensor().shape == std::vector<std::int64_t>{2, 2});
    CHECK(bytes_of(*rx) == bytes_of(x));
    const auto& ids = r->field("ids")->as_list();
    REQUIRE(ids.size() == 2);
    CHECK(bytes_of(ids[0]) == bytes_of(big));
    CHECK(ids[1].as_tensor().shape == std::vector<std::int64_t>{0});
  }

  TEST_CASE("remote tensors: a body of megabytes, both ways, and pipelined behind and before small ones") {
    Upstream up;
    Front front(up.port, kPass);
    // 512 x 512 float32 (1 MiB each way, the server's default body limit aside from the JSON
    // part): read 64 KiB at a time by the server called and by the remote client.
    std::vector<float> xs(512 * 511);
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i) * 0.5f - 7.0f;
    Value x = tensor_of<float>(xs, {511, 512}, dsl::DType::F32);
    for (int i = 0; i < 3; ++i) {
      auto r = front.run("relay", {x, Value::list({})});
      REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
      CHECK(bytes_of(*r->field("x")) == bytes_of(x));
    }

    // On one connection, written at once: a large binary request between two small JSON ones.
    // The server reads the large body with room for large reads and gives the room back; the
    // requests around it are read whole and in order.
    const std::string data = bytes_of(x);
    const std::string head = R"({"x": {"dtype": "f32", "shape": [511, 512], "binary_data_offset": 0, "binary_data_size": )" +
                             std::to_string(data.size()) + R"(}, "ids": []})";
    auto request = [](std::string body, std::vector<std::pair<std::string, std::string>> headers) {
      bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/up/pass", 11};
      req.set(bhttp::field::host, "localhost");
      for (auto& [k, v] : headers) req.set(k, v);
      req.body() = std::move(body);
      req.prepare_payload();
      std::ostringstream out;
      out << req;
      return out.str();
    };
    const std::string small = request(R"({"x": [[1, 2]], "ids": [[3]]})", {});
    const std::string wire = small +
                             request(head + data, {{"Inference-Header-Content-Length", std::to_string(head.size())},
                                                   {"Accept", "application/octet-stream"}}) +
                             small;
    asio::io_context ioc;
    tcp::socket sock(ioc);
    sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), up.port));
    asio::write(sock, asio::buffer(wire));
    beast::flat_buffer buf;
    std::vector<bhttp::response<bhttp::string_body>> answers(3);
    for (auto& a : answers) bhttp::read(sock, buf, a);
    CHECK(answers[0].result_int() == 200);
    CHECK(boost::json::parse(answers[0].body()) == boost::json::parse(R"({"x": [[1.0, 2.0]], "ids": [[3]]})"));
    REQUIRE(answers[1].result_int() == 200);
    const std::size_t n = std::stoul(std::string(answers[1]["Inference-Header-Content-Length"]));
    REQUIRE(n <= answers[1].body().size());
    CHECK(answers[1].body().substr(n) == data);
    CHECK(answers[2].body() == answers[0].body());
  }

  TEST_CASE("remote tensors: the request's tensors follow its JSON; the answer's are asked for and read") {
    ScriptedPeer peer([](const auto& req, int, int) -> std::optional<std::string> {
      if (req.target() == "/up/shout") return json_answer(R"("ok")");
      // Back: one f32 tensor of 2 and the list of i64 tensors, as a braid server writes them.
      std::string json = R"({"x": {"dtype": "f32", "shape": [1, 2], "binary_data_offset": 8, "binary_data_size": 8},)"
                         R"( "ids": [{"dtype": "i32", "shape": [2], "binary_data_offset": 0, "binary_data_size": 8}]})";
      const float xs[2] = {0.5f, -2.0f};
      const std::int32_t ids[2] = {7, -9};
      std::string data(reinterpret_cast<const char*>(ids), 8);
      data.append(reinterpret_cast<const char*>(xs), 8);
      return binary_answer(json, data, std::to_string(json.size()));
    });
    Front front(peer.port(), kPass);
    Value x = tensor_of<float>({1, 2, 3, 4, 5, 6}, {2, 3}, dsl::DType::F32);
    Value ids = tensor_of<std::int64_t>({42}, {1}, dsl::DType::I64);
    auto r = front.run("relay", {x, Value::list({ids})});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    // The answer: references resolved, an i32 tensor converted to the declared i64.
    CHECK(r->field("x")->as_tensor().to_doubles() == std::vector<double>{0.5, -2});
    const auto& got = r->field("ids")->as_list().at(0).as_tensor();
    CHECK(got.dtype == dsl::DType::I64);
    CHECK(got.to_doubles() == std::vector<double>{7, -9});

    // The request: the JSON part, then each argument's tensor's bytes in order.
    REQUIRE(peer.seen_count() == 1);
    const auto req = peer.seen_at(0);
    CHECK(req[bhttp::field::content_type] == "application/octet-stream");
    CHECK(req[bhttp::field::accept] == "application/octet-stream, application/json;q=0.9");
    const std::size_t n = std::stoul(std::string(req["Inference-Header-Content-Length"]));
    REQUIRE(n <= req.body().size());
    CHECK(boost::json::parse(req.body().substr(0, n)) ==
          boost::json::parse(R"({"x": {"dtype": "f32", "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 24},)"
                             R"( "ids": [{"dtype": "i64", "shape": [1], "binary_data_offset": 24, "binary_data_size": 8}]})"));
    CHECK(req.body().substr(n) == bytes_of(x) + bytes_of(ids));

    // A call with no tensor either way is plain JSON, as before.
    REQUIRE(front.run("e", {Value("hi")}));
    REQUIRE(peer.seen_count() == 2);
    const auto plain = peer.seen_at(1);
    CHECK(plain[bhttp::field::content_type] == "application/json");
    CHECK(plain[bhttp::field::accept] == "application/json");
    CHECK(plain.count("Inference-Header-Content-Length") == 0);
  }

  TEST_CASE("remote tensors: an answer whose binary framing is wrong is the node's error, naming the server") {
    std::string json_size;
    std::string json = R"({"x": {"dtype": "f32", "shape": [1, 2], "binary_data_offset": 0, "binary_data_size": 8}, "ids": []})";
    ScriptedPeer peer([&](const auto&, int, int) -> std::optional<std::string> {
      return binary_answer(json, std::string(4, '\0'), json_size);  // 4 of the 8 bytes promised
    });
    Front front(peer.port(), kPass);
    const Value x = tensor_of<float>({1}, {1, 1}, dsl::DType::F32);
    auto fails = [&](std::string size) {
      json_size = std::move(size);
      auto r = front.run("relay", {x, Value::list({})});
      REQUIRE(!r);
      CHECK(r.error().code == ErrorCode::ModelError);
      return r.error().message;
    };
    const std::string url = fmt::format("http://127.0.0.1:{}/up/pass", peer.port());
    CHECK(fails("abc") == fmt::format("{} answered Inference-Header-Content-Length `abc` for a body of {} bytes", url,
                                      json.size() + 4));
    CHECK(fails("100000") == fmt::format("{} answered Inference-Header-Content-Length `100000` for a body of {} bytes", url,
                                         json.size() + 4));
    CHECK(fails(std::to_string(json.size())) ==
          fmt::format("{} answered a value that is not the declared `{{x: tensor<f32, [?, ?]>, ids: list<tensor<i64, [?]>>}}`: "
                      "its answer.x: bad binary tensor reference: 8 bytes from byte 0 run past the end of the binary data "
                      "(4 bytes)",
                      url));
  }
}

}  // namespace braid::test
