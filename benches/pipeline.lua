-- wrk script: send DEPTH (default 16) pipelined GET / requests per write.
local depth = tonumber(os.getenv("DEPTH") or "16")
init = function(args)
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format("GET", "/")
  end
  req = table.concat(r)
end
request = function()
  return req
end
