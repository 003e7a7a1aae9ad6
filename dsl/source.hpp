#pragma once
// Source files and positions for the .graph front end.
//
// Every token, AST node and diagnostic carries a Span: a file id and a half-open byte range.
// Line and column (1-based, columns count bytes) are computed only when a diagnostic is shown.
//
//   SourceManager sm;
//   FileId f = sm.add("graphs/a.graph", text);
//   LineCol lc = sm.file(f).line_col(offset);

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace braid::dsl {

using FileId = std::uint32_t;
inline constexpr FileId kNoFile = ~FileId{0};

struct Span {
  FileId file = kNoFile;
  std::uint32_t begin = 0;
  std::uint32_t end = 0;

  bool valid() const { return file != kNoFile; }
  // The smallest span covering both (same file assumed; `a` wins otherwise).
  static Span cover(Span a, Span b) {
    if (!a.valid()) return b;
    if (!b.valid() || a.file != b.file) return a;
    return {a.file, a.begin < b.begin ? a.begin : b.begin, a.end > b.end ? a.end : b.end};
  }
};

struct LineCol {
  std::uint32_t line = 1;  // 1-based
  std::uint32_t col = 1;   // 1-based, in bytes
};

class SourceFile {
 public:
  SourceFile(std::string path, std::string text);

  const std::string& path() const { return path_; }
  std::string_view text() const { return text_; }
  LineCol line_col(std::uint32_t offset) const;
  // The text of a 1-based line, without its line break.
  std::string_view line_text(std::uint32_t line) const;
  std::uint32_t line_count() const { return static_cast<std::uint32_t>(line_starts_.size()); }
  // The byte offset of a 1-based line and column (clamped to the file).
  std::uint32_t offset(std::uint32_t line, std::uint32_t col) const;

 private:
  std::string path_;
  std::string text_;
  std::vector<std::uint32_t> line_starts_;
};

class SourceManager {
 public:
  FileId add(std::string path, std::string text);
  const SourceFile& file(FileId id) const { return *files_[id]; }
  std::size_t size() const { return files_.size(); }
  // The id of an already-added file with this exact path, or kNoFile.
  FileId find(std::string_view path) const;

 private:
  std::vector<std::unique_ptr<SourceFile>> files_;
};

}  // namespace braid::dsl
