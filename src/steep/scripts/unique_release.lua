-- unique_release: free a uniqueness lock, only if the given job still holds it
-- (compare-and-delete: a lock taken over by a newer job is left alone).
-- KEYS[1] lock STRING  the id of the job holding it
-- KEYS[2] jobs HASH
-- ARGV[1] job id
-- ARGV[2] "gone": release only if the job no longer exists (after an operator's delete,
--         which may have refused a running job); "" releases unconditionally
-- Returns 1 if released.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'gone' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
return redis.call('DEL', KEYS[1])
