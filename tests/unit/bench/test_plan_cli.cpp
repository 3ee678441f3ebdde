// `tandem plan` end to end on a cluster file: the JSON rows, their order and names, the refusals.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace {

struct Run {
  int code;
  std::string out, err;
};

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string base_name(const std::string& tag) {
  return std::string(TANDEM_TEST_WORK) + "/plan_cli_" + tag + "_" + std::to_string(getpid());
}

Run run(const std::string& args, const std::string& tag) {
  const std::string base = base_name(tag);
  const std::string cmd = std::string(TANDEM_BIN) + " " + args + " >" + base + ".out 2>" + base + ".err </dev/null";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(base + ".out"), slurp(base + ".err")};
}

std::string cluster_file(const std::string& tag, int nodes, int ranks_per_node, double mem_gib) {
  const std::string p = base_name(tag) + "_cluster.json";
  std::ofstream(p) << nlohmann::json{{"name", "t"}, {"nodes", nodes}, {"ranks_per_node", ranks_per_node},
                                     {"rank_read_gbs", 50}, {"rank_memory_gib", mem_gib},
                                     {"intra", {{"latency_us", 2}, {"gbs", 20}}},
                                     {"inter", {{"latency_us", 20}, {"gbs", 3}}},
                                     {"compute", {{"q8_0", {{1, 1.0}, {4, 1.2}, {16, 2.0}}}}}}
                          .dump();
  return p;
}

TEST(PlanCli, RanksEveryFeasibleLayoutIntoJson) {
  const std::string cl = cluster_file("rank", 8, 1, 64);
  const std::string js = base_name("rank") + "_plan.json";
  auto r = run("plan --shape llama-3-8b --type q8_0 --cluster " + cl + " --world 8 --speculation auto --json " + js,
               "rank");
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const auto j = nlohmann::json::parse(slurp(js));
  const auto& rows = j.at("results");
  ASSERT_FALSE(rows.empty());
  std::set<std::string> names;
  double prev = 1e300;
  for (const auto& row : rows) {
    const double d = row.at("decode_tok_s").get<double>();
    EXPECT_GT(d, 0);
    EXPECT_LE(d, prev);  // best first
    prev = d;
    names.insert(row.at("layout").get<std::string>() + " " + row.at("mode").get<std::string>());
  }
  // AR layouts of 8 ranks: tp8, tp4×pp2, tp2×pp4, tp1×pp8; PEARL with a draft group of 1, 2, 4.
  for (const char* n : {"tp8×pp1 ar", "tp4×pp2 ar", "tp2×pp4 ar", "tp1×pp8 ar", "tp8×pp1 sd", "tp4×pp1+draft4 pearl",
                        "tp1×pp7+draft1 pearl"})
    EXPECT_TRUE(names.count(n)) << n;
  // tp6×pp1+draft2: 6 does not divide 32 heads; refused with the launcher's words.
  bool refused_tp6 = false;
  for (const auto& f : j.at("refused"))
    if (f.at("layout") == "tp6×pp1+draft2")
      refused_tp6 = f.at("reason").get<std::string>().find("--tp 6 does not divide the model's 32 attention heads") !=
                    std::string::npos;
  EXPECT_TRUE(refused_tp6);
  EXPECT_NE(r.out.find("best: "), std::string::npos);
  EXPECT_NE(j.at("best_reason").get<std::string>().find(rows[0].at("layout").get<std::string>()), std::string::npos);
}

TEST(PlanCli, RefusesWhatCannotRun) {
  const std::string small = cluster_file("refuse", 2, 1, 1.0);
  // 1 GiB per rank cannot hold llama-2-13b q8_0 on 2 ranks in any layout.
  auto r = run("plan --shape llama-2-13b --type q8_0 --cluster " + small, "refuse");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("per rank of 't'"), std::string::npos) << r.out;
  // More ranks than the cluster has.
  r = run("plan --shape llama-2-7b --cluster " + small + " --world 4", "refuse2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--world 4: the cluster 't' has 2 ranks"), std::string::npos) << r.err;
  // Unknown shape, and neither --model nor --shape.
  r = run("plan --shape llama-9 --cluster " + small, "refuse3");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown shape (known: tinyllama-1.1b"), std::string::npos) << r.err;
  r = run("plan --cluster " + small, "refuse4");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("give exactly one of --model FILE or --shape NAME"), std::string::npos) << r.err;
  // --help of both subcommands.
  r = run("plan --help", "help1");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--speculation"), std::string::npos);
  r = run("bench calibrate --help", "help2");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--out"), std::string::npos);
}

TEST(PlanCli, LauncherLayoutAutoTakesThePlannersBest) {
  // A profile of a 2-core machine whose second core adds bandwidth: TP over 2 ranks should win.
  const std::string prof = base_name("auto") + "_profile.json";
  std::ofstream(prof) << nlohmann::json{
      {"machine", {{"cpu", "test"}, {"cores", 2}, {"memory_gib", 16.0}, {"date", "today"}}},
      {"read_gbs", {{{"threads", 1}, {"gbs", 10.0}}, {{"threads", 2}, {"gbs", 20.0}}}},
      {"compute", {{"f32", {{1, 1.0}, {16, 2.0}}}}},
      {"intra", {{"latency_us", 1}, {"gbs", 10}}}}.dump();
  const std::string launcher = std::string(TANDEM_BIN) + "-mpirun";
  const std::string model = std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf";
  const std::string base = base_name("auto");
  const std::string cmd = launcher + " --dry-run generate --model " + model + " --layout auto --world 2 --profile " +
                          prof + " --prompt hi >" + base + ".out 2>" + base + ".err </dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(base + ".err");
  const std::string err = slurp(base + ".err");
  EXPECT_NE(err.find("--layout auto picked tp 2 × pp 1 for 2 ranks"), std::string::npos) << err;
  EXPECT_NE(err.find("mpirun -n 2 "), std::string::npos) << err;
  EXPECT_NE(err.find("--prompt hi --tp 2 --pp 1"), std::string::npos) << err;
  EXPECT_EQ(err.find("--layout"), err.find("--layout auto picked"));  // not passed on to tandem
}

}  // namespace

namespace {

TEST(PlanCli, ModelCheckRefusesBadArgumentsBeforeMeasuring) {
  struct Case {
    const char* args;
    const char* message;
  };
  const Case cases[] = {
      {"--types q8_0,q9_9", "--types: unknown weight type 'q9_9'"},
      {"--spec-type nope", "--spec-type: unknown weight type 'nope'"},
      {"--scales 0.03,abc", "--scales: 'abc' is not a non-negative number"},
      {"--groups decode,speed", "--groups: unknown group 'speed'"},
      {"--link-gbit 10,fast", "--link-gbit: 'fast' is neither a rate in Gbit/s nor 'unshaped'"},
      {"--hosts 3", "--hosts: '3' must be auto, 0 (off) or 2"},
      {"--profile /nonexistent/profile.json", "--profile /nonexistent/profile.json: no such file"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const std::string tag = "mc" + std::to_string(i++);
    const auto r = run(std::string("bench model-check --work-dir ") + base_name(tag) + "_work " + c.args, tag);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
  }
  // CLI11's own range checks.
  auto r = run("bench model-check --runs 0", "mcruns");
  EXPECT_NE(r.code, 0);
  EXPECT_NE((r.out + r.err).find("--runs"), std::string::npos) << r.out << r.err;
  r = run("bench model-check --help", "mchelp");
  EXPECT_EQ(r.code, 0);
  for (const char* f : {"--profile", "--runs", "--json", "--hosts", "--link-gbit", "--scales"})
    EXPECT_NE(r.out.find(f), std::string::npos) << f;
}

}  // namespace
