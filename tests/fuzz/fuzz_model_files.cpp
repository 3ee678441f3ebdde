#include <gtest/gtest.h>
TEST(FuzzPlaceholder, Builds) { SUCCEED(); }
