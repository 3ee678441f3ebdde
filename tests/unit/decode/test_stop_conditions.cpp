#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "decode/stop_conditions.h"

using namespace tandem;

namespace {

StopParams stops(std::vector<std::string> s, int max_tokens = 0) {
  StopParams p;
  p.stop = std::move(s);
  p.max_tokens = max_tokens;
  return p;
}

// Feeds ordinary (non-EOG) pieces, returns the concatenated emitted text; `last` gets the final
// update.
std::string feed(StopState& st, const std::vector<std::string>& pieces, StopUpdate* last = nullptr) {
  std::string out;
  int32_t id = 100;
  for (const std::string& p : pieces) {
    StopUpdate u = st.push(id++, false, p);
    out += u.text;
    if (last) *last = u;
  }
  return out;
}

}  // namespace

TEST(StopConditions, ValidateNamesTheProblem) {
  EXPECT_TRUE(validate(stops({"\n\n", "é!"}, 10)).ok());
  struct Bad {
    StopParams p;
    const char* needle;
  };
  StopParams neg_ids;
  neg_ids.stop_token_ids = {2, -1};
  for (const Bad& b : {Bad{stops({}, -1), "max_tokens"}, Bad{stops({"ok", ""}), "stop string 1 is empty"},
                       Bad{stops({"\xff"}), "not valid UTF-8"}, Bad{stops({"a\xc3"}), "not valid UTF-8"},
                       Bad{stops({"\xc0\xaf"}), "not valid UTF-8"},      // overlong '/'
                       Bad{stops({"\xed\xa0\x80"}), "not valid UTF-8"},  // surrogate
                       Bad{neg_ids, "stop_token_ids[1]"}}) {
    const Status s = validate(b.p);
    ASSERT_FALSE(s.ok()) << b.needle;
    EXPECT_NE(s.error().message.find(b.needle), std::string::npos) << s.error().message;
  }
}

TEST(StopConditions, StopStringInsideOneToken) {
  StopState st(stops({"END"}));
  StopUpdate last;
  EXPECT_EQ(feed(st, {"Hello", " worEND tail"}, &last), "Hello wor");
  EXPECT_EQ(last.finish, FinishReason::kStop);
  EXPECT_TRUE(st.finished());
  // Nothing after the stop: further tokens are ignored and not counted.
  const StopUpdate after = st.push(1, false, "more");
  EXPECT_EQ(after.text, "");
  EXPECT_EQ(after.finish, FinishReason::kStop);
  EXPECT_EQ(st.n_tokens(), 2);
  EXPECT_EQ(st.finish(), "");
}

TEST(StopConditions, StopStringSpanningTokensIsHeldBackThenDropped) {
  StopState st(stops({"###"}));
  StopUpdate u = st.push(1, false, "a#");
  EXPECT_EQ(u.text, "a");  // "#" may start the stop string
  u = st.push(2, false, "#");
  EXPECT_EQ(u.text, "");
  EXPECT_FALSE(u.finished());
  u = st.push(3, false, "# b");
  EXPECT_EQ(u.text, "");
  EXPECT_EQ(u.finish, FinishReason::kStop);
}

TEST(StopConditions, FailedPartialMatchReleasesHeldText) {
  StopState st(stops({"###"}));
  EXPECT_EQ(feed(st, {"a#", "#"}), "a");
  const StopUpdate u = st.push(3, false, "x#");
  EXPECT_EQ(u.text, "##x");  // the trailing "#" is held again
  EXPECT_FALSE(u.finished());
  EXPECT_EQ(st.finish(), "#");  // end of generation for another reason: flush
}

TEST(StopConditions, EarliestStopStringWins) {
  StopState st(stops({"world", "o w"}));
  StopUpdate last;
  EXPECT_EQ(feed(st, {"hello world"}, &last), "hell");
  EXPECT_EQ(last.finish, FinishReason::kStop);
  // A stop string completed by an earlier token wins over a longer one still open.
  StopState st2(stops({"abcd", "bc"}));
  EXPECT_EQ(feed(st2, {"xab", "c", "d"}, &last), "xa");
  EXPECT_TRUE(st2.finished());
}

TEST(StopConditions, MultiByteStopStringKeepsCharactersWhole) {
  StopState st(stops({"é!"}));
  EXPECT_EQ(st.push(1, false, "café").text, "caf");  // "é" is held, never split
  const StopUpdate u = st.push(2, false, "!");
  EXPECT_EQ(u.text, "");
  EXPECT_EQ(u.finish, FinishReason::kStop);
  StopState st2(stops({"é!"}));
  EXPECT_EQ(feed(st2, {"café", "s"}), "cafés");
}

TEST(StopConditions, StopTokenIdFlushesHeldTextButNotItsOwn) {
  StopParams p = stops({"##"});
  p.stop_token_ids = {7};
  StopState st(p);
  EXPECT_EQ(st.push(5, false, "a#").text, "a");
  const StopUpdate u = st.push(7, false, "XYZ");
  EXPECT_EQ(u.text, "#");
  EXPECT_EQ(u.finish, FinishReason::kStop);
}

TEST(StopConditions, EosUnlessIgnored) {
  StopState st(stops({}));
  EXPECT_EQ(st.push(1, false, "hi").text, "hi");
  const StopUpdate u = st.push(2, true, "");
  EXPECT_EQ(u.finish, FinishReason::kEos);
  EXPECT_EQ(to_string(u.finish), "eos");

  StopParams p = stops({}, 3);
  p.ignore_eos = true;
  StopState ig(p);
  EXPECT_FALSE(ig.push(1, true, "").finished());
  EXPECT_FALSE(ig.push(2, true, "x").finished());
  const StopUpdate v = ig.push(3, false, "y");
  EXPECT_EQ(v.text, "y");
  EXPECT_EQ(v.finish, FinishReason::kLength);
}

TEST(StopConditions, MaxTokensFinishesWithLengthAndFlushes) {
  StopState st(stops({"STOP"}, 3));
  EXPECT_EQ(st.push(1, false, "a").text, "a");
  EXPECT_EQ(st.push(2, false, "b").text, "b");
  const StopUpdate u = st.push(3, false, "ST");  // a partial stop string that never completes
  EXPECT_EQ(u.text, "ST");
  EXPECT_EQ(u.finish, FinishReason::kLength);
  EXPECT_EQ(to_string(u.finish), "length");
  EXPECT_EQ(st.n_tokens(), 3);
  // A stop string completed by the last allowed token is a STOP, not a LENGTH.
  StopState st2(stops({"STOP"}, 2));
  StopUpdate last;
  EXPECT_EQ(feed(st2, {"ST", "OP"}, &last), "");
  EXPECT_EQ(last.finish, FinishReason::kStop);
  // 0 = no limit.
  StopState st3(stops({}, 0));
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(st3.push(i, false, "z").finished());
}

// Random token streams over a tiny alphabet (so partial matches are frequent) against a
// whole-text reference: generation stops at the first token after which the text so far contains
// a stop string, the output is the text before the earliest occurrence, and at every step exactly
// the text that can no longer start a stop string has been emitted.
TEST(StopConditions, StreamingMatchesWholeTextReference) {
  const std::vector<std::string> alphabet = {"a", "b", "ab", "ba", "aab", "bb", "c"};
  const std::vector<std::string> stop = {"abba", "bab", "cc"};
  auto could_start_stop = [&](const std::string& rest) {
    if (rest.empty()) return true;
    for (const std::string& s : stop)
      if (rest.size() < s.size() && s.compare(0, rest.size(), rest) == 0) return true;
    return false;
  };
  std::mt19937 g(17);
  int stopped = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    StopState st(stops(stop));
    std::string all, emitted, expected;
    bool expect_stop = false;
    for (int i = 0; i < 12 && !expect_stop; ++i) {
      const std::string& piece = alphabet[g() % alphabet.size()];
      all += piece;
      size_t first = std::string::npos;
      for (const std::string& s : stop) first = std::min(first, all.find(s));
      const StopUpdate u = st.push(i, false, piece);
      emitted += u.text;
      if (first != std::string::npos) {
        expect_stop = true;
        expected = all.substr(0, first);
        ASSERT_EQ(u.finish, FinishReason::kStop) << all;
        ASSERT_EQ(emitted, expected) << all;
      } else {
        ASSERT_FALSE(u.finished()) << all;
        ASSERT_EQ(all.compare(0, emitted.size(), emitted), 0) << "emitted is not a prefix";
        ASSERT_TRUE(could_start_stop(all.substr(emitted.size())))
            << "held back more than a possible stop-string start: " << all << " | " << emitted;
        for (size_t j = 0; j < emitted.size(); ++j)
          ASSERT_FALSE(could_start_stop(all.substr(j)))
              << "emitted a possible stop-string start: " << all << " | " << emitted;
      }
    }
    if (!expect_stop) {
      ASSERT_EQ(emitted + st.finish(), all);
    }
    stopped += expect_stop ? 1 : 0;
  }
  EXPECT_GT(stopped, 500);  // both outcomes are exercised
  EXPECT_LT(stopped, 1950);
}
