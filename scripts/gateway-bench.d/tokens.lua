-- scripts/gateway-bench, distinct-token mode: every request carries the next
-- token of a file (one per line; after the last, the first again), as
--   wrk ... -s tokens.lua URL -- TOKENS_FILE
-- The requests are formatted once, in init; each request() hands out the
-- next. With wrk -t1 there is one thread, so one cycle through the file.
-- Reports like report.lua (loaded from beside this file).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local requests = {}
local count = 0
local next_index = 0

function init(args)
  local path = args[1]
  if not path then
    error("usage: wrk -s tokens.lua URL -- TOKENS_FILE")
  end
  for line in io.lines(path) do
    if line ~= "" then
      local headers = {}
      for name, value in pairs(wrk.headers) do
        headers[name] = value
      end
      headers["Authorization"] = "Bearer " .. line
      count = count + 1
      requests[count] = wrk.format(nil, nil, headers)
    end
  end
  if count == 0 then
    error("no tokens in " .. path)
  end
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end
