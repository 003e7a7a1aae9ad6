#include "dsl/diagnostics.hpp"

#include <algorithm>
#include <array>

namespace braid::dsl {
namespace {

struct DiagInfo {
  std::string_view name;
  Severity severity;
  std::string_view format;
};

constexpr std::array kDiags = {
#define DIAG(name, severity, format) DiagInfo{#name, Severity::severity, format},
#include "dsl/diagnostics.def"
#undef DIAG
};

// Optimal string alignment distance: insertions, deletions, substitutions and transpositions of
// adjacent characters (the commonest typo) each cost 1.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t w = b.size() + 1;
  std::vector<std::size_t> d((a.size() + 1) * w);
  for (std::size_t i = 0; i <= a.size(); ++i) d[i * w] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      std::size_t v = std::min({d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) v = std::min(v, d[(i - 2) * w + j - 2] + 1);
      d[i * w + j] = v;
    }
  }
  return d[a.size() * w + b.size()];
}

std::string_view severity_word(Severity s) {
  switch (s) {
    case Severity::Error: return "error";
    case Severity::Warning: return "warning";
    case Severity::Note: return "note";
  }
  return "error";
}

// A source line made safe for a terminal: control bytes become '?', so that the caret line
// (built from the same bytes) stays aligned.
std::string printable_line(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (unsigned char c : line) {
    if (c == '\t' || c >= 0x20) {
      out.push_back(c == 0x7f ? '?' : static_cast<char>(c));
    } else {
      out.push_back('?');
    }
  }
  return out;
}

void render_location(std::string& out, const SourceManager& sm, Span span, Severity sev,
                     std::string_view message, bool color, bool snippet) {
  const char* bold = color ? "\x1b[1m" : "";
  const char* reset = color ? "\x1b[0m" : "";
  const char* sev_color = !color ? "" : sev == Severity::Error ? "\x1b[1;31m" : sev == Severity::Warning ? "\x1b[1;35m" : "\x1b[1;36m";
  if (!span.valid() || span.file >= sm.size()) {
    out += fmt::format("{}{}:{} {}{}\n", sev_color, severity_word(sev), reset, message, "");
    return;
  }
  const SourceFile& f = sm.file(span.file);
  LineCol lc = f.line_col(span.begin);
  out += fmt::format("{}{}:{}:{}:{} {}{}:{} {}{}{}\n", bold, f.path(), lc.line, lc.col, reset, sev_color,
                     severity_word(sev), reset, bold, message, reset);
  if (!snippet) return;
  std::string_view line = f.line_text(lc.line);
  std::uint32_t col0 = lc.col - 1;
  std::uint32_t len = span.end > span.begin ? span.end - span.begin : 1;
  // A very long line is shown as a window around the caret, marked with "...".
  constexpr std::uint32_t kWindow = 160;
  std::string_view prefix, suffix;
  if (line.size() > kWindow) {
    std::uint32_t start = col0 > kWindow / 3 ? col0 - kWindow / 3 : 0;
    while (start > 0 && start < line.size() && (static_cast<unsigned char>(line[start]) & 0xC0) == 0x80) --start;
    std::uint32_t end = std::min<std::uint32_t>(static_cast<std::uint32_t>(line.size()), start + kWindow);
    if (start > 0) prefix = "...";
    if (end < line.size()) suffix = "...";
    line = line.substr(start, end - start);
    col0 -= start;
  }
  out += "  ";
  out += prefix;
  out += printable_line(line);
  out += suffix;
  out += "\n  ";
  out.append(prefix.size(), ' ');
  // Caret line: reproduce tabs so the caret lines up; skip UTF-8 continuation bytes.
  for (std::uint32_t i = 0; i < col0 && i < line.size(); ++i) {
    auto c = static_cast<unsigned char>(line[i]);
    if ((c & 0xC0) == 0x80) continue;
    out.push_back(c == '\t' ? '\t' : ' ');
  }
  out += color ? "\x1b[1;32m^" : "^";
  std::uint32_t avail = col0 < line.size() ? static_cast<std::uint32_t>(line.size()) - col0 : 1;
  len = std::min(len, avail);
  for (std::uint32_t i = 1; i < len; ++i) {
    auto c = static_cast<unsigned char>(line[col0 + i]);
    if ((c & 0xC0) == 0x80) continue;
    out.push_back('~');
  }
  out += reset;
  out += "\n";
}

}  // namespace

std::string_view diag_name(Diag d) { return kDiags[static_cast<std::size_t>(d)].name; }
Severity diag_severity(Diag d) { return kDiags[static_cast<std::size_t>(d)].severity; }
std::string_view diag_format(Diag d) { return kDiags[static_cast<std::size_t>(d)].format; }

std::string_view closest_name(std::string_view name, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  std::size_t best_d = ~std::size_t{0};
  // Suggestions are for names a person typed; the distance is quadratic in their length.
  constexpr std::size_t kMaxLen = 64;
  if (name.size() > kMaxLen) return best;
  std::size_t limit = std::max<std::size_t>(1, (name.size() + 2) / 3);
  for (auto c : candidates) {
    if (c == name || c.empty() || c.size() > kMaxLen) continue;
    // Cheap reject before the quadratic distance.
    std::size_t diff = c.size() > name.size() ? c.size() - name.size() : name.size() - c.size();
    if (diff > limit) continue;
    std::size_t d = edit_distance(name, c);
    if (d <= limit && d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

Diagnostics::Builder& Diagnostics::Builder::note(Span span, std::string message) {
  if (d_) d_->notes.push_back({span, std::move(message)});
  return *this;
}

Diagnostics::Builder& Diagnostics::Builder::suggest(std::string_view name,
                                                    const std::vector<std::string_view>& candidates) {
  if (!d_) return *this;
  auto best = closest_name(name, candidates);
  if (!best.empty()) d_->message += fmt::format("; did you mean `{}`?", best);
  return *this;
}

Diagnostics::Builder Diagnostics::add(Diag kind, Span span, std::string message) {
  Severity sev = diag_severity(kind);
  if (sev == Severity::Error && errors_ >= error_limit_) {
    if (!limit_reported_) {
      limit_reported_ = true;
      diags_.push_back({Diag::too_many_errors, Severity::Error, span, std::string(diag_format(Diag::too_many_errors)), {}});
    }
    return Builder(nullptr);
  }
  if (sev == Severity::Error) {
    ++errors_;
    ++file_errors_[span.file];
  }
  if (sev == Severity::Warning) ++warnings_;
  diags_.push_back({kind, sev, span, std::move(message), {}});
  return Builder(&diags_.back());
}

std::size_t Diagnostics::errors_in(FileId file) const {
  auto it = file_errors_.find(file);
  return it == file_errors_.end() ? 0 : it->second;
}

void Diagnostics::sort_by_location() {
  std::stable_sort(diags_.begin(), diags_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.kind == Diag::too_many_errors || b.kind == Diag::too_many_errors) {
      return b.kind == Diag::too_many_errors && a.kind != Diag::too_many_errors;
    }
    if (a.span.file != b.span.file) return a.span.file < b.span.file;
    return a.span.begin < b.span.begin;
  });
}

std::string render(const Diagnostic& d, const SourceManager& sm, bool color) {
  std::string out;
  render_location(out, sm, d.span, d.severity, d.message, color, true);
  for (const auto& n : d.notes) {
    if (n.span.valid()) {
      render_location(out, sm, n.span, Severity::Note, n.message, color, true);
    } else {
      render_location(out, sm, d.span, Severity::Note, n.message, color, false);
    }
  }
  return out;
}

std::string render_all(const Diagnostics& diags, const SourceManager& sm, bool color) {
  std::string out;
  for (const auto& d : diags.all()) out += render(d, sm, color);
  return out;
}

std::string quote_text(std::string_view text, std::size_t max) {
  std::string out;
  std::size_t n = 0;
  for (unsigned char c : text) {
    if (n++ >= max) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

}  // namespace braid::dsl
