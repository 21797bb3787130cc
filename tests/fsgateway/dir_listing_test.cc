#include "fsgateway/dir_listing.h"

#include <gtest/gtest.h>

namespace ringstore::fs {
namespace {

const DirEntry kDir{10, S_IFDIR | 0755};
const DirEntry kFile{11, S_IFREG | 0644};

TEST(DirListingTest, CountsTheSubdirectoriesItIsBuiltFrom) {
  DirListing l(DirListing::Map{{"a", kDir}, {"b", kFile}, {"c", kDir}});
  EXPECT_EQ(l.subdirs(), 2u);
  EXPECT_EQ(l.map().size(), 3u);
}

TEST(DirListingTest, KeepsTheCountAsEntriesComeGoAndChangeType) {
  DirListing l;
  l.Set("d", kDir);
  l.Set("f", kFile);
  EXPECT_EQ(l.subdirs(), 1u);
  l.Set("d", kDir);  // the same entry again (a notification of our own change)
  EXPECT_EQ(l.subdirs(), 1u);
  l.Set("d", kFile);  // another mount replaced the directory with a file under that name
  EXPECT_EQ(l.subdirs(), 0u);
  l.Set("f", kDir);
  EXPECT_EQ(l.subdirs(), 1u);
  l.Erase("missing");
  EXPECT_EQ(l.subdirs(), 1u);
  l.Erase("f");
  EXPECT_EQ(l.subdirs(), 0u);
  l.Erase("d");
  EXPECT_TRUE(l.empty());
}

}  // namespace
}  // namespace ringstore::fs
