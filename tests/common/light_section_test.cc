#include "common/light_section.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace daxguard {
namespace {

int domain_a, domain_b;

TEST(LightSectionTest, WaitOutReturnsAtOnceWithNoSectionOpen) {
  LightSection::Enter(&domain_a);
  LightSection::Exit();
  LightSection::WaitOut(&domain_a);  // would spin forever if the exit were lost
}

TEST(LightSectionTest, WaitOutWaitsForASectionOfItsDomainOnly) {
  std::atomic<bool> inside{false}, leave{false}, waited{false};
  std::thread t([&] {
    LightSection::Enter(&domain_a);
    inside.store(true);
    while (!leave.load()) std::this_thread::yield();
    LightSection::Exit();
  });
  while (!inside.load()) std::this_thread::yield();
  LightSection::WaitOut(&domain_b);  // another domain: not held up
  std::thread waiter([&] {
    LightSection::WaitOut(&domain_a);
    waited.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(waited.load()) << "WaitOut returned while a section was open";
  leave.store(true);
  waiter.join();
  t.join();
  EXPECT_TRUE(waited.load());
}

TEST(LightSectionTest, AChildAfterForkIsNotHeldUpByTheParentsOtherThreads) {
  std::atomic<bool> inside{false}, leave{false};
  std::thread t([&] {
    LightSection::Enter(&domain_a);
    inside.store(true);
    while (!leave.load()) std::this_thread::yield();
    LightSection::Exit();
  });
  while (!inside.load()) std::this_thread::yield();
  pid_t child = fork();
  if (child == 0) {
    LightSection::WaitOut(&domain_a);  // the thread inside does not exist here
    _exit(0);
  }
  int status = 0;
  bool done = false;
  for (int i = 0; i < 500 && !done; ++i) {
    done = waitpid(child, &status, WNOHANG) == child;
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!done) kill(child, SIGKILL), waitpid(child, &status, 0);
  leave.store(true);
  t.join();
  EXPECT_TRUE(done && WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child's WaitOut hung";
}

}  // namespace
}  // namespace daxguard
