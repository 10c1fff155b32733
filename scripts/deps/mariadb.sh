# MariaDB (MySQL protocol) for the mysql connector tests: connectors/tests/mysql.rs and
# compat-tests/tests/mysql.rs start their own mariadbd (mariadb-install-db + mariadbd on a free port).
# Sourced by scripts/test.sh, which provides apt_install, log and die.
have_mariadbd() {
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]
}
if ! have_mariadbd; then
  apt_install mariadb-server mariadb-client
  have_mariadbd || die "MariaDB installed but mariadbd still not found"
fi
# Debian puts mariadbd in /usr/sbin, which a non-root PATH may lack.
case ":$PATH:" in
  *:/usr/sbin:*) ;;
  *) export PATH="$PATH:/usr/sbin" ;;
esac
command -v mariadb-install-db >/dev/null 2>&1 || die "mariadb-install-db not found (package mariadb-server)"
command -v mariadb >/dev/null 2>&1 || apt_install mariadb-client
