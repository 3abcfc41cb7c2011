data_dir = "./data"

listener "public" {
  address = "127.0.0.1:8443"
  bogus   = true
}

channel "c" {
  listener = "public"
  path     = "/c"
  auth "none" {}
  forward_to = ["b"]
  verify_token = env("EDGERELAY_TEST_UNSET_VAR")
}

backend "b" {
  url = "http://127.0.0.1:1/"
}
