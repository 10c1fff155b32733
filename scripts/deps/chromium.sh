# Chromium and its WebDriver (chromedriver), for compat-tests/tests/web_ui.rs (the web UI at /ui/
# driven in a headless browser). Sourced by scripts/test.sh.
#
# Debian's `chromium` and `chromium-driver` packages, installed with apt when `chromium` is missing.
# The test fails (never skips) without them, so this script is what makes it pass.

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt_install chromium chromium-driver
  command -v chromium >/dev/null 2>&1 || die "chromium installed but not on PATH"
  command -v chromedriver >/dev/null 2>&1 || die "chromium-driver installed but chromedriver not on PATH"
fi
