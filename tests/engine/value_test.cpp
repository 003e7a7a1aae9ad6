// Values and their JSON form.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include <boost/json.hpp>
#include <fmt/format.h>

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

// `text` with raw data after it, decoded as binary tensors are.
engine::Result<Value> decode_binary(const std::string& text, std::string_view raw, const dsl::TypeRef& t) {
  engine::BinaryData data{raw};
  return engine::from_json(boost::json::parse(text), t, "`v`", &data);
}

template <typename T>
Value host_tensor(std::vector<T> xs, std::vector<std::int64_t> shape, dsl::DType d) {
  return Value(engine::Tensor::from_bytes(xs.data(), std::move(shape), d));
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

  TEST_CASE("an integer past an `int`, or a number past a double, says so") {
    auto big = decode("9223372036854775808", Type::integer());
    REQUIRE(!big);
    CHECK(big.error().message == "`v`: 9223372036854775808 is larger than an `int` holds (at most 9223372036854775807)");
    CHECK(decode("9223372036854775807", Type::integer())->as_int() == INT64_MAX);
    // JSON has no infinity: 1e400 is a number past any double, not an infinite float.
    auto inf = decode("1e400", Type::floating());
    REQUIRE(!inf);
    CHECK(inf.error().message == "`v`: a number too large for a `float` (beyond 1.8e308)");
    auto inf_tensor = decode("[1, -1e400]", Type::tensor());
    REQUIRE(!inf_tensor);
    CHECK(inf_tensor.error().message == "`v`: not a tensor (an element is past the largest number, 1.8e308)");
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

  TEST_CASE("binary tensors: a value's tensors as raw bytes round trip bit for bit, at any depth") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // What JSON cannot carry: NaN (null in JSON), -0.0, an i64 past 2^53 (JSON goes through doubles).
    Value f = host_tensor<float>({1.5f, static_cast<float>(nan), -0.0f, 3e38f}, {2, 2}, dsl::DType::F32);
    Value ids = host_tensor<std::int64_t>({(std::int64_t{1} << 53) + 1, -7}, {2}, dsl::DType::I64);
    Value flags = host_tensor<std::uint8_t>({1, 0, 1}, {3}, dsl::DType::Bool);
    Value empty = host_tensor<double>({}, {0, 4}, dsl::DType::F64);
    Value v = Value::record({"f", "many", "n"}, {f, Value::list({ids, flags, empty}), Value(std::int64_t{2})});
    auto t = Type::record({{"f", Type::tensor(dsl::DType::F32, std::vector<std::int64_t>{2, -1})},
                           {"many", Type::list(Type::tensor())},
                           {"n", Type::integer()}});
    std::string raw;
    const std::string text = engine::json_text(engine::to_json(v, &raw));
    CHECK(text == R"({"f":{"dtype":"f32","shape":[2,2],"binary_data_offset":0,"binary_data_size":16},"many":[)"
                  R"({"dtype":"i64","shape":[2],"binary_data_offset":16,"binary_data_size":16},)"
                  R"({"dtype":"bool","shape":[3],"binary_data_offset":32,"binary_data_size":3},)"
                  R"({"dtype":"f64","shape":[0,4],"binary_data_offset":35,"binary_data_size":0}],"n":2})");
    CHECK(raw.size() == 35);
    // `tensor` (any dtype) decodes as a JSON tensor would, to f32: the i64 kept exactly needs its
    // dtype declared.
    auto exact = Type::record({{"f", Type::tensor(dsl::DType::F32)},
                               {"many", Type::list(Type::tensor(dsl::DType::I64))},
                               {"n", Type::integer()}});
    auto back = decode_binary(text, raw, exact);
    REQUIRE_MESSAGE(back, (back ? "" : back.error().message));
    const auto& bf = back->field("f")->as_tensor();
    REQUIRE(bf.dtype == dsl::DType::F32);
    CHECK(std::memcmp(bf.host_data(), f.as_tensor().host_data(), 16) == 0);  // NaN and -0.0 as they were
    const auto& bi = back->field("many")->as_list()[0].as_tensor();
    CHECK(static_cast<const std::int64_t*>(bi.host_data())[0] == (std::int64_t{1} << 53) + 1);
    CHECK(back->field("many")->as_list()[1].as_tensor().to_doubles() == std::vector<double>{1, 0, 1});
    CHECK(back->field("many")->as_list()[2].as_tensor().shape == std::vector<std::int64_t>{0, 4});
    // Declared `tensor`: converted to f32, as the same values sent as JSON arrays would be.
    auto loose = decode_binary(text, raw, t);
    REQUIRE(loose);
    CHECK(loose->field("many")->as_list()[0].as_tensor().dtype == dsl::DType::F32);
    CHECK(loose->field("many")->as_list()[0].as_tensor().to_doubles() ==
          std::vector<double>{static_cast<float>((std::int64_t{1} << 53) + 1), -7});
  }

  TEST_CASE("binary tensors: a dtype other than the declared one converts; any non-zero byte is true") {
    const std::string raw("\x01\x00\x00\x00\xfe\xff\xff\xff\x00\x07", 10);  // i32 1, -2; then bytes 0, 7
    auto f = decode_binary(R"({"dtype": "i32", "shape": [2], "binary_data_offset": 0, "binary_data_size": 8})", raw,
                           Type::tensor(dsl::DType::F64));
    REQUIRE(f);
    CHECK(f->as_tensor().dtype == dsl::DType::F64);
    CHECK(f->as_tensor().to_doubles() == std::vector<double>{1, -2});
    auto b = decode_binary(R"({"dtype": "bool", "shape": [2], "binary_data_offset": 8, "binary_data_size": 2})", raw,
                           Type::tensor(dsl::DType::Bool));
    REQUIRE(b);
    CHECK(static_cast<const std::uint8_t*>(b->as_tensor().host_data())[1] == 1);
  }

  TEST_CASE("binary tensors: a bad reference says what is wrong with it") {
    const std::string raw(24, '\0');
    auto t = Type::tensor(dsl::DType::F32, std::vector<std::int64_t>{-1, 3});
    auto why = [&](const char* text) {
      auto r = decode_binary(text, raw, t);
      return r ? std::string("decoded") : r.error().message;
    };
    const std::string bad = "`v`: bad binary tensor reference: ";
    CHECK(why(R"({"dtype": "f32", "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 24})") == "decoded");
    const std::pair<const char*, std::string> cases[] = {
        {R"({"dtype": "f32", "shape": [2, 3], "binary_data_offset": 4, "binary_data_size": 24})",
         bad + "24 bytes from byte 4 run past the end of the binary data (24 bytes)"},
        {R"({"dtype": "f32", "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 20})",
         bad + "`binary_data_size` is 20, but 6 elements of f32 take 24 bytes"},
        {R"({"dtype": "f16", "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 12})",
         bad + "`dtype` must be one of f32, f64, i8, i16, i32, i64, u8, bool, found `f16`"},
        {R"({"dtype": 3, "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 24})",
         bad + "`dtype` must be one of f32, f64, i8, i16, i32, i64, u8, bool, found an integer"},
        {R"({"dtype": "f32", "shape": [2, -3], "binary_data_offset": 0, "binary_data_size": 24})",
         bad + "`shape` must be an array of sizes (integers from 0)"},
        {R"({"dtype": "f32", "shape": [1099511627776, 1099511627776], "binary_data_offset": 0, "binary_data_size": 0})",
         bad + "`shape` has more elements than any body could hold"},
        {R"({"dtype": "f32", "shape": [2, 3], "binary_data_offset": 18446744073709551615, "binary_data_size": 24})",
         bad + "24 bytes from byte 18446744073709551615 run past the end of the binary data (24 bytes)"},
        {R"({"dtype": "f32", "shape": [2, 3], "binary_data_offset": 0})",
         bad + "it needs `dtype`, `shape`, `binary_data_offset` and `binary_data_size`"},
        {R"({"dtype": "f32", "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 24, "x": 1})",
         bad + "unknown key `x` (it has `dtype`, `shape`, `binary_data_offset` and `binary_data_size`)"},
        {R"({"dtype": "f32", "shape": [6], "binary_data_offset": 0, "binary_data_size": 24})",
         "`v`: expected `tensor<f32, [?, 3]>`, found shape [6]"},
    };
    for (const auto& [text, message] : cases) {
      CAPTURE(text);
      CHECK(why(text) == message);
    }
    // Without raw data, a reference is refused; any other object where a tensor goes is a mismatch.
    auto plain = decode(R"({"dtype": "f32", "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 24})", t);
    REQUIRE(!plain);
    CHECK(plain.error().message.find("a binary tensor reference, but no binary data follows the JSON") != std::string::npos);
    CHECK(decode(R"({"a": 1})", t).error().message == "`v`: expected `tensor<f32, [?, 3]>`, found an object");
  }

  TEST_CASE("binary tensors: no byte is referred to twice, so a body cannot multiply itself") {
    const std::string raw(16, '\1');
    auto t = Type::list(Type::tensor(dsl::DType::F32));
    const char* ref = R"({"dtype": "u8", "shape": [8], "binary_data_offset": 0, "binary_data_size": 8})";
    engine::BinaryData halves{raw};
    auto two = engine::from_json(boost::json::parse(fmt::format("[{}, {}]", ref,
        R"({"dtype": "u8", "shape": [8], "binary_data_offset": 8, "binary_data_size": 8})")), t, "`v`", &halves);
    CHECK(two);
    engine::BinaryData same{raw};
    auto thrice = engine::from_json(boost::json::parse(fmt::format("[{0}, {0}, {0}]", ref)), t, "`v`", &same);
    REQUIRE(!thrice);
    CHECK(thrice.error().message ==
          "`v`[2]: bad binary tensor reference: the references refer to more bytes in all than the binary data has (16): "
          "each byte may be referred to once");
  }

  TEST_CASE("tensors: a dimension past any body, even after a 0, is refused; so is a number an integer dtype cannot hold") {
    const std::string raw(8, '\0');
    auto huge = decode_binary(R"({"dtype": "f32", "shape": [0, 18446744073709551615], "binary_data_offset": 0, "binary_data_size": 0})",
                              raw, Type::tensor());
    REQUIRE(!huge);
    CHECK(huge.error().message == "`v`: bad binary tensor reference: `shape` has more elements than any body could hold");
    // Converted to an integer dtype, each number must fit it (a cast of any other is undefined):
    // NaN and infinities only come as binary data, too large a number either way.
    const float nan_inf[2] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
    auto nan = decode_binary(R"({"dtype": "f32", "shape": [2], "binary_data_offset": 0, "binary_data_size": 8})",
                             std::string_view(reinterpret_cast<const char*>(nan_inf), 8), Type::tensor(dsl::DType::I32));
    REQUIRE(!nan);
    CHECK(nan.error().message == "`v`: element 0 (nan) does not fit in i32");
    auto big = decode("[1, 2147483648]", Type::tensor(dsl::DType::I32));
    REQUIRE(!big);
    CHECK(big.error().message == "`v`: element 1 (2147483648) does not fit in i32");
    CHECK(decode("[-2147483648.5, 255.9]", Type::tensor(dsl::DType::I32)));  // fractions are cut, as before
    CHECK(!decode("[256]", Type::tensor(dsl::DType::U8)));
    CHECK(!decode("[-1]", Type::tensor(dsl::DType::U8)));
    CHECK(decode("[9.2e18]", Type::tensor(dsl::DType::I64)));
    CHECK(!decode("[9.3e18]", Type::tensor(dsl::DType::I64)));
    // Integers go into an integer tensor exactly, past 2^53 too, and come out so.
    auto exact = decode("[9223372036854775807, -9223372036854775808, 9007199254740993]", Type::tensor(dsl::DType::I64));
    REQUIRE(exact);
    CHECK(exact->as_tensor().to_ints() == std::vector<std::int64_t>{INT64_MAX, INT64_MIN, 9007199254740993});
    CHECK(engine::json_text(engine::to_json(*exact)) == "[9223372036854775807,-9223372036854775808,9007199254740993]");
    auto over = decode("[9223372036854775808]", Type::tensor(dsl::DType::I64));
    REQUIRE(!over);
    CHECK(over.error().message == "`v`: element 0 (9223372036854775808) does not fit in i64");
    const std::int64_t wide[2] = {1, std::int64_t{1} << 40};
    auto narrowed = decode_binary(R"({"dtype": "i64", "shape": [2], "binary_data_offset": 0, "binary_data_size": 16})",
                                  std::string_view(reinterpret_cast<const char*>(wide), 16), Type::tensor(dsl::DType::I32));
    REQUIRE(!narrowed);
    CHECK(narrowed.error().message == "`v`: element 1 (1099511627776) does not fit in i32");
    // A bool tensor holds 0 or 1, whatever number it was made from.
    auto b = decode("[0, 2, -0.5]", Type::tensor(dsl::DType::Bool));
    REQUIRE(b);
    const auto* bytes = static_cast<const std::uint8_t*>(b->as_tensor().host_data());
    CHECK((bytes[0] == 0 && bytes[1] == 1 && bytes[2] == 1));
  }

  TEST_CASE("holds_tensor: whether a type can carry a tensor, at any depth") {
    CHECK(engine::holds_tensor(Type::tensor()));
    CHECK(engine::holds_tensor(Type::list(Type::record({{"a", Type::optional(Type::tensor())}}))));
    CHECK_FALSE(engine::holds_tensor(Type::list(Type::record({{"a", Type::str()}}))));
    CHECK_FALSE(engine::holds_tensor(Type::error()));
  }
}

}  // namespace braid::test
