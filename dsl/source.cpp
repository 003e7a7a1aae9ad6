#include "dsl/source.hpp"

#include <algorithm>

namespace braid::dsl {

SourceFile::SourceFile(std::string path, std::string text)
    : path_(std::move(path)), text_(std::move(text)) {
  line_starts_.push_back(0);
  for (std::uint32_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }
}

LineCol SourceFile::line_col(std::uint32_t offset) const {
  if (offset > text_.size()) offset = static_cast<std::uint32_t>(text_.size());
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  auto line = static_cast<std::uint32_t>(it - line_starts_.begin());  // >= 1
  return {line, offset - line_starts_[line - 1] + 1};
}

std::string_view SourceFile::line_text(std::uint32_t line) const {
  if (line == 0 || line > line_starts_.size()) return {};
  std::uint32_t begin = line_starts_[line - 1];
  std::uint32_t end = line < line_starts_.size() ? line_starts_[line] : static_cast<std::uint32_t>(text_.size());
  std::string_view s(text_.data() + begin, end - begin);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::uint32_t SourceFile::offset(std::uint32_t line, std::uint32_t col) const {
  if (line == 0) line = 1;
  if (line > line_starts_.size()) return static_cast<std::uint32_t>(text_.size());
  std::uint64_t off = std::uint64_t{line_starts_[line - 1]} + (col ? col - 1 : 0);
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(off, text_.size()));
}

FileId SourceManager::add(std::string path, std::string text) {
  files_.push_back(std::make_unique<SourceFile>(std::move(path), std::move(text)));
  return static_cast<FileId>(files_.size() - 1);
}

FileId SourceManager::find(std::string_view path) const {
  for (std::size_t i = 0; i < files_.size(); ++i) {
    if (files_[i]->path() == path) return static_cast<FileId>(i);
  }
  return kNoFile;
}

}  // namespace braid::dsl
