// The batched form's rule (engine/batch_form.hpp), which the torch backend loads by and `braid
// check` reports by: lists, packed tensors with and without their lengths, rows, and what fits
// none of them.
#include <doctest/doctest.h>

#include "engine/batch_form.hpp"

namespace braid::test {
namespace {

using dsl::Type;

plan::Method method(std::vector<plan::Param> params, dsl::TypeRef result) {
  plan::Method m;
  m.name = "f";
  m.params = std::move(params);
  m.result = std::move(result);
  return m;
}

engine::MethodSchema batch(std::vector<plan::Param> params, dsl::TypeRef result) {
  return {"f_batch", std::move(params), std::move(result)};
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("batch form: lists, packed tensors with or without lengths, rows") {
    const auto t = Type::tensor(dsl::DType::F32, std::vector<std::int64_t>{-1, 64});
    const auto m = method({{"x", t}, {"by", Type::floating()}}, t);

    auto lists = engine::batch_form(m, batch({{"x", Type::list(Type::tensor())}, {"by", Type::list(Type::floating())}},
                                             Type::list(Type::tensor())));
    REQUIRE(lists);
    CHECK_FALSE(lists->params[0].packed);
    CHECK_FALSE(lists->params[1].packed);
    CHECK_FALSE(lists->rows);

    auto packed = engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"x_lengths", Type::tensor()}, {"by", Type::list(Type::floating())}}, Type::tensor()));
    REQUIRE(packed);
    CHECK(packed->params[0].packed);
    CHECK(packed->params[0].lengths);
    CHECK_FALSE(packed->params[1].packed);
    CHECK(packed->rows);

    auto host_lengths = engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"x_lengths", Type::list(Type::integer())}, {"by", Type::list(Type::floating())}},
                 Type::list(Type::tensor())));
    REQUIRE(host_lengths);
    CHECK(host_lengths->params[0].lengths);
    CHECK(host_lengths->params[0].lengths_list);
    CHECK_FALSE(packed->params[0].lengths_list);
    // Lengths as floats are no lengths: then `x_lengths` is one parameter too many.
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"x_lengths", Type::list(Type::floating())}, {"by", Type::list(Type::floating())}},
                 Type::tensor())));

    auto no_lengths = engine::batch_form(m, batch({{"x", Type::tensor()}, {"by", Type::list(Type::floating())}},
                                                  Type::list(Type::tensor())));
    REQUIRE(no_lengths);
    CHECK(no_lengths->params[0].packed);
    CHECK_FALSE(no_lengths->params[0].lengths);
    CHECK_FALSE(no_lengths->rows);
  }

  TEST_CASE("batch form: what fits none of the forms") {
    const auto m = method({{"x", Type::tensor()}, {"text", Type::str()}}, Type::floating());
    // A number is never packed; a str never a tensor; a lengths parameter must be named for its tensor.
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::str()}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"lengths", Type::tensor()}, {"text", Type::list(Type::str())}},
                 Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}, {"y", Type::tensor()}},
                                            Type::list(Type::floating()))));
    CHECK(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}}, Type::list(Type::floating()))));
    // Numbers may come back as the rows of one tensor; a str may not.
    auto numbers = engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}}, Type::tensor()));
    REQUIRE(numbers);
    CHECK(numbers->rows);
    CHECK_FALSE(engine::batch_form(method({{"x", Type::tensor()}}, Type::str()), batch({{"x", Type::tensor()}}, Type::tensor())));
    // A TorchScript type the DSL lacks (the error type), or an optional list, is no list.
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::error()}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::str())}}, Type::error())));
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"text", Type::optional(Type::list(Type::str()))}}, Type::list(Type::floating()))));
    CHECK_FALSE(engine::batch_form(
        m, batch({{"x", Type::tensor()}, {"text", Type::list(Type::error())}}, Type::list(Type::floating()))));
    // A method whose own parameter is named `<p>_lengths` keeps it: it is not p's lengths.
    const auto own = method({{"x", Type::tensor()}, {"x_lengths", Type::integer()}}, Type::tensor());
    auto f = engine::batch_form(own, batch({{"x", Type::tensor()}, {"x_lengths", Type::list(Type::integer())}}, Type::tensor()));
    REQUIRE(f);
    CHECK(f->params[0].packed);
    CHECK_FALSE(f->params[0].lengths);
    CHECK_FALSE(f->params[1].packed);
    // The message names both forms where a tensor is involved, the list form alone otherwise.
    CHECK(engine::batch_signatures(m) ==
          "`(x: list<tensor>, text: list<str>) -> list<float>` or, packed, "
          "`(x: tensor, x_lengths: tensor, text: list<str>) -> tensor` (each `_lengths` optional, a tensor or a `list<int>`; "
          "the result a list or one tensor of rows)");
    CHECK(engine::batch_signatures(method({{"x", Type::tensor()}}, Type::tensor())) ==
          "`(x: list<tensor>) -> list<tensor>` or, packed, `(x: tensor, x_lengths: tensor) -> tensor` (each `_lengths` "
          "optional, a tensor or a `list<int>`; the result a list or one tensor of rows)");
    CHECK(engine::batch_signatures(method({{"text", Type::str()}}, Type::floating())) ==
          "`(text: list<str>) -> list<float>` or, with the results as the rows of one tensor, `(text: list<str>) -> tensor`");
    CHECK(engine::batch_signatures(method({{"text", Type::str()}}, Type::str())) == "`(text: list<str>) -> list<str>`");
  }
}

}  // namespace braid::test
