// Running the example programs as a user does, for the CLI tests: through the cross-compiling
// emulator when there is one, stdout and stderr captured in files beside a log path.
#pragma once

#include "test_helpers.hpp"

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sae::test::cli {

namespace fs = std::filesystem;

struct Exit {
  int code = -1;  // exit status, or 128 + signal
  std::string out, err;
};


// Starts `program args...` (through the cross-compiling emulator when there is one) with stdout
// and stderr going to files beside `log`; `fault` sets SAE_TEST_FAIL_AT.
pid_t start(const std::string& program, const std::vector<std::string>& args, const fs::path& log,
            const std::string& fault = "") {
  std::vector<std::string> argv;
  std::istringstream emulator(SAE_TEST_EMULATOR);  // "qemu-aarch64|-L|/usr/aarch64-linux-gnu"
  for (std::string word; std::getline(emulator, word, '|');)
    if (!word.empty()) argv.push_back(word);
  argv.push_back(std::string(SAE_PROGRAM_DIR) + "/" + program);
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open((log.string() + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open((log.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (fault.empty()) ::unsetenv("SAE_TEST_FAIL_AT");
    else ::setenv("SAE_TEST_FAIL_AT", fault.c_str(), 1);
    std::vector<char*> c;
    for (auto& a : argv) c.push_back(a.data());
    c.push_back(nullptr);
    ::execvp(c[0], c.data());
    ::_exit(127);
  }
  return pid;
}

Exit finish(pid_t pid, const fs::path& log) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  Exit e;
  e.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  e.out = sae::test::read_file(log.string() + ".out");
  e.err = sae::test::read_file(log.string() + ".err");
  return e;
}

Exit run(const std::string& program, const std::vector<std::string>& args, const fs::path& log,
         const std::string& fault = "") {
  return finish(start(program, args, log, fault), log);
}

}  // namespace sae::test::cli
