#!/bin/sh
# The demo's one program: each instance writes a page from the discovery variables
# maestro injected (who it is, where its dependencies are), then serves it over HTTP.
trap 'exit 0' TERM

# The value of a variable whose name is computed, e.g. STORE_DEMO_STORE_1_HOST.
var() { eval "printf '%s' \"\${$1}\""; }
# MaestroNG's name normalisation for plain ASCII names: upper case, non-word chars to _.
norm() { printf '%s' "$1" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9_\n' '_'; }

{
  echo "$ROLE $CONTAINER_NAME (service $SERVICE_NAME of $MAESTRO_ENVIRONMENT_NAME)"
  for dep in store api; do
    instances=$(var "$(norm $dep)_INSTANCES")
    [ -n "$instances" ] || continue
    for i in $(echo "$instances" | tr , ' '); do
      prefix="$(norm $dep)_$(norm "$i")"
      echo "  $dep $i at $(var "${prefix}_HOST"):$(var "${prefix}_HTTP_PORT")"
    done
  done
} > /www/index.html

httpd -f -p 8000 -h /www &
wait
