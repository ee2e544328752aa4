// NodeJournal on real memfds: round trip through a second mapping (as a
// restarted process sees it), growth and the cap, torn and corrupt bytes,
// and concurrent writers.
#include "agent/passthrough/node_journal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace coherefs::agent::passthrough {
namespace {

using Node = NodeJournal::NodeRecord;
using HandleRec = NodeJournal::HandleRecord;

UniqueFd NewMemfd() {
  UniqueFd fd(memfd_create("node_journal_test", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  return fd;
}

UniqueFd Dup(const UniqueFd& fd) { return UniqueFd(fcntl(fd.get(), F_DUPFD_CLOEXEC, 0)); }

std::unique_ptr<NodeJournal> OpenOrDie(UniqueFd fd, size_t max = NodeJournal::kDefaultMaxBytes) {
  auto j = NodeJournal::Open(std::move(fd), max);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? std::move(*j) : nullptr;
}

Node MakeNode(uint64_t id) {
  Node n;
  n.id = id;
  n.generation = id * 7;
  n.nlookup = id % 5 + 1;
  n.dev = 0x801;
  n.ino = 1000 + id;
  n.mnt_id = 42;
  n.type = S_IFREG;
  n.file_key = absl::StrCat("\x01\x00\x00\x00key-of-", id);
  return n;
}

bool SameNode(const Node& a, const Node& b) {
  return a.id == b.id && a.generation == b.generation && a.nlookup == b.nlookup &&
         a.dev == b.dev && a.ino == b.ino && a.mnt_id == b.mnt_id && a.type == b.type &&
         a.file_key == b.file_key;
}

std::string Contents(const UniqueFd& fd) {
  struct stat st;
  EXPECT_EQ(fstat(fd.get(), &st), 0);
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  EXPECT_EQ(pread(fd.get(), bytes.data(), bytes.size(), 0), st.st_size);
  return bytes;
}

UniqueFd MemfdWith(const std::string& bytes) {
  UniqueFd fd = NewMemfd();
  EXPECT_EQ(write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  return fd;
}

TEST(NodeJournalTest, FreshMemfdReadsEmpty) {
  auto j = OpenOrDie(NewMemfd());
  auto snap = j->Read();
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_TRUE(snap->nodes.empty());
  EXPECT_TRUE(snap->handles.empty());
  EXPECT_FALSE(snap->incomplete);
  EXPECT_EQ(snap->corrupt_slots, 0u);
}

TEST(NodeJournalTest, RoundTripThroughASecondMapping) {
  UniqueFd memfd = NewMemfd();
  std::map<uint64_t, Node> want;
  {
    auto j = OpenOrDie(Dup(memfd));
    j->Reset(42);
    std::map<uint64_t, NodeJournal::Slot> slots;
    for (uint64_t id = 2; id < 300; ++id) {
      Node n = MakeNode(id);
      slots[id] = j->AddNode(n);
      ASSERT_NE(slots[id], NodeJournal::kNoSlot);
      want[id] = n;
    }
    for (uint64_t id = 2; id < 300; id += 3) {  // forgotten
      j->Remove(slots[id]);
      want.erase(id);
    }
    for (uint64_t id = 3; id < 300; id += 3) {  // looked up again
      j->SetLookups(slots[id], 1000 + id);
      want[id].nlookup = 1000 + id;
    }
    HandleRec h{77, 5, O_RDWR | O_APPEND, false};
    HandleRec d{78, 4, O_RDONLY | O_DIRECTORY, true};
    j->AddHandle(h);
    NodeJournal::Slot gone = j->AddHandle(HandleRec{79, 4, O_RDONLY, false});
    j->AddHandle(d);
    j->Remove(gone);
    j->NoteIds(500, 90);
    j->SetSessionFlags(1);
    EXPECT_EQ(j->stats().nodes, want.size());
    EXPECT_EQ(j->stats().handles, 2u);
    EXPECT_GT(j->stats().bytes, NodeJournal::kHeaderBytes + 64 * NodeJournal::kSlotBytes)
        << "298 records must have grown the initial 64 slots";
  }  // the first "process" is gone; only the memfd is left

  auto j = OpenOrDie(Dup(memfd));
  auto snap = j->Read();
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->root_mnt_id, 42u);
  EXPECT_EQ(snap->max_node_id, 500u);
  EXPECT_EQ(snap->max_handle_id, 90u);
  EXPECT_EQ(snap->session_flags, 1u);
  EXPECT_EQ(snap->corrupt_slots, 0u);
  EXPECT_FALSE(snap->incomplete);
  ASSERT_EQ(snap->nodes.size(), want.size());
  for (const Node& n : snap->nodes) {
    ASSERT_TRUE(want.count(n.id)) << n.id;
    EXPECT_TRUE(SameNode(n, want[n.id])) << n.id;
  }
  ASSERT_EQ(snap->handles.size(), 2u);
  std::map<uint64_t, HandleRec> handles;
  for (const auto& h : snap->handles) handles[h.id] = h;
  EXPECT_EQ(handles[77].node, 5u);
  EXPECT_EQ(handles[77].flags, static_cast<uint32_t>(O_RDWR | O_APPEND));
  EXPECT_FALSE(handles[77].is_dir);
  EXPECT_TRUE(handles[78].is_dir);
  EXPECT_EQ(handles.count(79), 0u);
}

TEST(NodeJournalTest, OldContentsTakeNoAddsUntilReset) {
  UniqueFd memfd = NewMemfd();
  OpenOrDie(Dup(memfd))->AddNode(MakeNode(2));
  auto j = OpenOrDie(Dup(memfd));
  EXPECT_EQ(j->AddNode(MakeNode(3)), NodeJournal::kNoSlot);
  ASSERT_EQ(j->Read()->nodes.size(), 1u);
  EXPECT_EQ(j->Read()->nodes[0].id, 2u);  // not overwritten by id 3
  j->Reset(1);
  EXPECT_TRUE(j->Read()->nodes.empty());
  EXPECT_NE(j->AddNode(MakeNode(3)), NodeJournal::kNoSlot);
}

TEST(NodeJournalTest, CapDropsAddsButKeepsUpdatesAndRemoves) {
  constexpr size_t kSlots = 10;
  UniqueFd memfd = NewMemfd();
  auto j = OpenOrDie(Dup(memfd), NodeJournal::kHeaderBytes + kSlots * NodeJournal::kSlotBytes);
  std::vector<NodeJournal::Slot> slots;
  for (uint64_t id = 2; id < 2 + kSlots; ++id) {
    slots.push_back(j->AddNode(MakeNode(id)));
    ASSERT_NE(slots.back(), NodeJournal::kNoSlot);
  }
  EXPECT_EQ(j->AddNode(MakeNode(100)), NodeJournal::kNoSlot);
  EXPECT_EQ(j->AddHandle(HandleRec{1, 2, O_RDONLY, false}), NodeJournal::kNoSlot);
  EXPECT_EQ(j->stats().dropped, 2u);
  Node too_long = MakeNode(101);
  too_long.file_key.assign(NodeJournal::kMaxFileKeyBytes + 1, 'k');
  j->Remove(slots[0]);
  EXPECT_EQ(j->AddNode(too_long), NodeJournal::kNoSlot);  // dropped, slot stays free
  EXPECT_EQ(j->stats().dropped, 3u);
  j->SetLookups(slots[1], 9);
  EXPECT_NE(j->AddNode(MakeNode(102)), NodeJournal::kNoSlot);  // the freed slot

  auto snap = OpenOrDie(Dup(memfd))->Read();
  ASSERT_TRUE(snap.ok());
  EXPECT_TRUE(snap->incomplete);
  std::map<uint64_t, Node> got;
  for (const auto& n : snap->nodes) got[n.id] = n;
  EXPECT_EQ(got.size(), kSlots);
  EXPECT_EQ(got.count(2), 0u);
  EXPECT_EQ(got[3].nlookup, 9u);
  EXPECT_EQ(got.count(102), 1u);
  struct stat st;
  ASSERT_EQ(fstat(memfd.get(), &st), 0);
  EXPECT_LE(static_cast<size_t>(st.st_size),
            NodeJournal::kHeaderBytes + kSlots * NodeJournal::kSlotBytes);
}

// A journal with `n` node records in slots 0..n-1, as bytes.
std::string JournalBytes(int n) {
  UniqueFd memfd = NewMemfd();
  auto j = OpenOrDie(Dup(memfd));
  for (int i = 0; i < n; ++i) j->AddNode(MakeNode(2 + i));
  j->AddHandle(HandleRec{9, 2, O_RDONLY, false});
  return Contents(memfd);
}

TEST(NodeJournalTest, TruncationYieldsTheWholeSlotsBeforeTheCut) {
  const std::string bytes = JournalBytes(20);
  for (size_t len = 0; len <= NodeJournal::kHeaderBytes + 22 * NodeJournal::kSlotBytes;
       len += 37) {
    UniqueFd fd = MemfdWith(bytes.substr(0, std::min(len, bytes.size())));
    auto j = OpenOrDie(Dup(fd));
    auto snap = j->Read();
    if (len == 0) {  // an empty memfd is a fresh journal
      ASSERT_TRUE(snap.ok());
      EXPECT_TRUE(snap->nodes.empty());
      continue;
    }
    if (len < NodeJournal::kHeaderBytes) {
      EXPECT_EQ(snap.status().code(), absl::StatusCode::kDataLoss) << len;
      continue;
    }
    ASSERT_TRUE(snap.ok()) << len << ": " << snap.status();
    const size_t whole = (len - NodeJournal::kHeaderBytes) / NodeJournal::kSlotBytes;
    EXPECT_EQ(snap->nodes.size(), std::min<size_t>(whole, 20)) << len;
    for (const Node& n : snap->nodes) EXPECT_TRUE(SameNode(n, MakeNode(n.id))) << n.id;
    EXPECT_EQ(snap->handles.size(), whole > 20 ? 1u : 0u) << len;
    j->Reset(1);  // and the journal is usable again
    EXPECT_NE(j->AddNode(MakeNode(2)), NodeJournal::kNoSlot);
  }
}

TEST(NodeJournalTest, TornRecordsReadAsFreeOrCorruptNeverAsData) {
  std::string bytes = JournalBytes(4);
  const size_t s1 = NodeJournal::kHeaderBytes + 1 * NodeJournal::kSlotBytes;
  const size_t s2 = NodeJournal::kHeaderBytes + 2 * NodeJournal::kSlotBytes;
  const size_t s3 = NodeJournal::kHeaderBytes + 3 * NodeJournal::kSlotBytes;
  // Killed before the commit word of slot 1: fields written, commit 0.
  memset(&bytes[s1], 0, 8);
  // Killed half way through refilling slot 2: commit set, half the key new.
  bytes[s2 + 70] ^= 0x5a;
  // Killed between the count and its check (impossible with one store, but
  // a flipped bit in the count looks the same).
  bytes[s3 + 8] ^= 0x01;
  auto snap = OpenOrDie(MemfdWith(bytes))->Read();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_EQ(snap->nodes.size(), 1u);
  EXPECT_TRUE(SameNode(snap->nodes[0], MakeNode(2)));
  EXPECT_EQ(snap->corrupt_slots, 2u);
}

TEST(NodeJournalTest, BadHeaderIsDataLoss) {
  const std::string good = JournalBytes(3);
  for (size_t off : {size_t{0}, size_t{9}, size_t{13}, size_t{17}, size_t{25}}) {
    std::string bytes = good;
    bytes[off] ^= 0x10;
    auto snap = OpenOrDie(MemfdWith(bytes))->Read();
    EXPECT_EQ(snap.status().code(), absl::StatusCode::kDataLoss) << off;
  }
  auto snap = OpenOrDie(MemfdWith(std::string(4096, 'x')))->Read();
  EXPECT_EQ(snap.status().code(), absl::StatusCode::kDataLoss);
}

TEST(NodeJournalTest, RandomFlipsGiveASubsetOrDataLoss) {
  const std::string good = JournalBytes(30);
  std::mt19937_64 rng(1234);
  int refused = 0;
  int partial = 0;
  for (int round = 0; round < 500; ++round) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    auto snap = OpenOrDie(MemfdWith(bytes))->Read();
    if (!snap.ok()) {
      EXPECT_EQ(snap.status().code(), absl::StatusCode::kDataLoss);
      ++refused;
      continue;
    }
    if (snap->nodes.size() < 30) ++partial;
    for (const Node& n : snap->nodes) {
      EXPECT_TRUE(SameNode(n, MakeNode(n.id))) << "round " << round << " id " << n.id;
    }
    for (const auto& h : snap->handles) EXPECT_EQ(h.id, 9u);
  }
  EXPECT_GT(partial, 100);  // most flips land in slots and are caught there
  EXPECT_GT(refused, 0);
}

TEST(NodeJournalTest, EightThreadsThenReadEqualsTheirFinalState) {
  UniqueFd memfd = NewMemfd();
  auto j = OpenOrDie(Dup(memfd));
  constexpr int kThreads = 8;
  std::vector<std::map<uint64_t, uint64_t>> live(kThreads);  // id -> nlookup
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::map<uint64_t, NodeJournal::Slot> slots;
      uint64_t next = 2 + static_cast<uint64_t>(t) * 1000000;
      for (int i = 0; i < 20000; ++i) {
        const int op = static_cast<int>(rng() % 3);
        if (op == 0 || slots.empty()) {
          Node n = MakeNode(next);
          n.nlookup = 1;
          slots[next] = j->AddNode(n);
          live[t][next] = 1;
          ++next;
        } else {
          auto it = slots.begin();
          std::advance(it, rng() % slots.size());
          if (op == 1) {
            j->SetLookups(it->second, ++live[t][it->first]);
          } else {
            j->Remove(it->second);
            live[t].erase(it->first);
            slots.erase(it);
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::map<uint64_t, uint64_t> want;
  for (const auto& m : live) want.insert(m.begin(), m.end());
  auto snap = OpenOrDie(Dup(memfd))->Read();
  ASSERT_TRUE(snap.ok());
  std::map<uint64_t, uint64_t> got;
  for (const Node& n : snap->nodes) got[n.id] = n.nlookup;
  EXPECT_EQ(got, want);
  EXPECT_EQ(j->stats().nodes, want.size());
}

}  // namespace
}  // namespace coherefs::agent::passthrough
