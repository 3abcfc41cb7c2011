# The two commands of the README:
#   make demo   runs the relay on config.hcl.example and shows a full round trip
#   make test   runs every test with the race detector
.PHONY: demo test bench build vet

build:
	go build -buildvcs=auto -o bin/edgerelay ./cmd/edgerelay

demo:
	./scripts/demo.sh

test:
	go vet ./...
	go test -race -timeout 20m ./...

bench:
	go run ./bench -mode all

vet:
	gofmt -l . | (! grep .)
	go vet ./...
