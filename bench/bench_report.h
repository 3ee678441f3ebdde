// Shared plumbing of the benchmarks: medians, a readable table on stdout, the same rows as JSON.
// Each row is one configuration with the agreed field names (mode, layout, threads, weight_type,
// prompt_tok_s, decode_tok_s, weight_gb_s, mem_bw_gb_s, roofline_pct, comm_pct, acceptance,
// mean_accepted, draft_len, speedup_vs_ar) plus the model shape.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace tandem::bench {

using Json = nlohmann::json;

double median(std::vector<double> v);
// Columns: (JSON key, header). Numbers are printed with 2 decimals (3 for values below 1).
void print_table(const std::vector<Json>& rows, const std::vector<std::pair<std::string, std::string>>& cols);
// Writes {"benchmark": name, "machine": {...}, "results": rows} to `path` (no-op when empty).
bool write_json(const std::string& path, const std::string& name, const std::vector<Json>& rows, const Json& extra = {});
Json machine_info();  // cpu model, cores, kernel level, memory
// Draws the charts of a benchmark's JSON with bench/<script> (PNG and SVG next to the JSON) when
// python3 with matplotlib is installed; says so and carries on when it is not.
void plot_json(const std::string& script, const std::string& json_path);

}  // namespace tandem::bench
