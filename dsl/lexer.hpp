#pragma once
// The .graph lexer: bytes in, tokens out. Never throws; lexical errors are reported to the
// Diagnostics and become `Tok::error` tokens so that the parser can keep going.
//
//   Lexer lex(sm, file, diags);
//   std::vector<Token> toks = lex.run();   // always ends with Tok::eof

#include <vector>

#include "dsl/diagnostics.hpp"
#include "dsl/token.hpp"

namespace braid::dsl {

class Lexer {
 public:
  Lexer(const SourceManager& sm, FileId file, Diagnostics& diags);
  std::vector<Token> run();

 private:
  Token next();
  Token make(Tok kind, std::uint32_t begin);
  Token number(std::uint32_t begin);
  Token string_literal(std::uint32_t begin);
  char peek(std::size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  bool at_end() const { return pos_ >= text_.size(); }

  std::string_view text_;
  FileId file_;
  Diagnostics& diags_;
  std::uint32_t pos_ = 0;
};

}  // namespace braid::dsl
