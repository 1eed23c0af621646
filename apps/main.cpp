// dydca: content-aware neural video codec. git-style subcommands; each one
// lives in its own cli_*.cpp and registers through cli_common.h.
#include <new>
#include <csignal>
#include <cstdio>
#include <vector>

#include "cli_common.h"
#include "dydca/media.h"

int main(int argc, char** argv) {
  using namespace dydca;
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe is a write error, not a kill
  CLI::App app{"dydca: content-aware neural video codec (LR H.264 + one dynamic SR model)"};
  app.set_version_flag("--version", "dydca 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  auto& g = cli::globals();
  app.add_flag("-v,--verbose", g.verbosity, "More log output (repeat for debug)");
  app.add_flag("-q,--quiet", g.quiet, "Only errors, no progress");
  app.add_option("--threads", g.threads, "Worker threads")->check(CLI::Range(1, 256))
      ->capture_default_str();

  std::vector<cli::Subcommand> subs;
  subs.push_back(cli::add_probe(app));
  subs.push_back(cli::add_compare(app));
  subs.push_back(cli::add_baseline(app));
  subs.push_back(cli::add_info(app));
  subs.push_back(cli::add_chunks(app));
#ifdef DYDCA_HAVE_DECODER
  subs.push_back(cli::add_decode(app));
#endif
#ifdef DYDCA_HAVE_ENCODER
  subs.push_back(cli::add_encode(app));
  subs.push_back(cli::add_bench(app));
#endif
#ifdef DYDCA_HAVE_PLAY
  subs.push_back(cli::add_play(app));
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "dydca: error: %s (see dydca --help)\n", e.what());
    return 2;
  }
  set_log_level(cli::cli_log_level());
  install_ffmpeg_log_bridge();
  // Last line of defence: an allocation failure (an address-space limit, an
  // absurd input) or any other escaped exception is one line and exit 1, not
  // an abort. Library code turns the ones it expects into errors itself.
  try {
    for (auto& s : subs)
      if (s.app->parsed()) return s.run();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "dydca: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dydca: error: %s\n", e.what());
    return 1;
  }
  return 2;
}
