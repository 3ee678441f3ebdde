// Prompt-lookup drafting: no model. The longest recent n-gram that ends the sequence is looked
// up earlier in it, and what followed that occurrence is proposed. Free to run, and good wherever
// the output repeats its input (code edits, extraction, summaries that quote).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace tandem {

struct NgramOptions {
  int max_n = 4;  // longest suffix tried first
  int min_n = 2;  // shortest suffix accepted
};

// Up to n_draft tokens continuing `hist`, empty when no n-gram of length >= min_n recurs.
std::vector<int32_t> ngram_draft(std::span<const int32_t> hist, int n_draft, const NgramOptions& o = {});

}  // namespace tandem
