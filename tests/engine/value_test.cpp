// Values and their JSON form.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "dsl/types.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"

namespace braid::test {
namespace {

using dsl::Type;
using engine::Value;

engine::Result<Value> decode(const char* text, const dsl::TypeRef& t) {
  return engine::from_json(boost::json::parse(text), t, "`v`");
}

}  // namespace

TEST_SUITE("values") {
  TEST_CASE("JSON round trips through typed decoding") {
    auto t = Type::list(Type::record({{"generated", Type::str()}, {"score", Type::floating()}}));
    const char* text = R"([{"generated":"a","score":0.5},{"generated":"b","score":1.0}])";
    auto v = decode(text, t);
    REQUIRE(v);
    CHECK(engine::json_text(engine::to_json(*v)) == text);
  }

  TEST_CASE("numbers print as people write them") {
    CHECK(engine::json_text(boost::json::parse("[0.5802264213562012, 1e-7, 3, 2.0]")) == "[0.5802264213562012,1e-07,3,2.0]");
    CHECK(engine::json_text(boost::json::parse(R"({"a":[1,{"b":"x\"y"}]})"), true) ==
          "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x\\\"y\"\n    }\n  ]\n}");
  }

  TEST_CASE("strings are always JSON: escapes, UTF-8 kept, bytes that are not UTF-8 replaced") {
    auto text = [](std::string_view s) { return engine::json_text(boost::json::string(s)); };
    CHECK(text("a\"b\\c\n\t\x01/") == R"("a\"b\\c\n\t\u0001/")");
    CHECK(text("h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == "\"h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");  // é € 😀
    // One U+FFFD per maximal invalid subpart (Unicode's practice, as browsers decode).
    const std::string r = "\xEF\xBF\xBD";
    CHECK(text("a\xFF" "b") == "\"a" + r + "b\"");                        // never a lead byte
    CHECK(text("\x80\xBF") == "\"" + r + r + "\"");                   // stray continuations
    CHECK(text("\xC3") == "\"" + r + "\"");                            // cut at the end
    CHECK(text("\xE2\x82x") == "\"" + r + "x\"");                     // cut mid-sequence: one
    CHECK(text("\xC0\xAF") == "\"" + r + r + "\"");                   // overlong
    CHECK(text("\xE0\x80\x80") == "\"" + r + r + r + "\"");          // overlong, 3 bytes
    CHECK(text("\xED\xA0\x80") == "\"" + r + r + r + "\"");          // a UTF-16 surrogate
    CHECK(text("\xF4\x90\x80\x80") == "\"" + r + r + r + r + "\""); // past U+10FFFF
    CHECK(text("\xF0\x9F\x98") == "\"" + r + "\"");                  // 4-byte sequence cut
    // Keys too; and what comes out parses back.
    boost::json::object o{{"k\xFF", "v\xC3"}};
    std::string out = engine::json_text(o);
    CHECK(out == "{\"k" + r + "\":\"v" + r + "\"}");
    boost::system::error_code ec;
    (void)boost::json::parse(out, ec);
    CHECK_FALSE(ec);
  }

  TEST_CASE("tensors decode from nested arrays with their shape checked") {
    auto t = decode("[[1, 2, 3], [4, 5, 6]]", Type::tensor(dsl::DType::F32, std::vector<std::int64_t>{-1, 3}));
    REQUIRE(t);
    CHECK(t->as_tensor().shape == std::vector<std::int64_t>{2, 3});
    CHECK(t->as_tensor().to_doubles() == std::vector<double>{1, 2, 3, 4, 5, 6});
    CHECK(engine::json_text(engine::to_json(*t)) == "[[1.0,2.0,3.0],[4.0,5.0,6.0]]");
    auto ragged = decode("[[1, 2], [3]]", Type::tensor());
    REQUIRE(!ragged);
    CHECK(ragged.error().message == "`v`: not a tensor (ragged: dimension 1 has lengths 2 and 1)");
    auto shape = decode("[[1, 2]]", Type::tensor(dsl::DType::F32, std::vector<std::int64_t>{-1, 3}));
    REQUIRE(!shape);
    CHECK(shape.error().message == "`v`: expected `tensor<f32, [?, 3]>`, found shape [1, 2]");
  }

  TEST_CASE("records: missing and unknown fields; optionals") {
    auto t = Type::record({{"a", Type::integer()}, {"b", Type::optional(Type::str())}});
    auto ok = decode(R"({"a": 1})", t);
    REQUIRE(ok);
    CHECK(ok->field("b")->is_none());
    CHECK(decode(R"({"b": "x"})", t).error().message == "`v`: missing field `a`");
    CHECK(decode(R"({"a": 1, "c": 2})", t).error().message == "`v`: unknown field `c` for `{a: int, b: str?}`");
    CHECK(decode("5", Type::floating())->as_float() == 5.0);
    CHECK(decode("5.0", Type::integer())->as_int() == 5);
    CHECK(!decode("5.5", Type::integer()));
    CHECK(!decode("true", Type::integer()));
  }
}

}  // namespace braid::test
