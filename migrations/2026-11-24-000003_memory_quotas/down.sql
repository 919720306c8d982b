DROP TRIGGER memory_usage_delete ON memories;
DROP TRIGGER memory_usage_update ON memories;
DROP TRIGGER memory_usage_insert ON memories;
DROP FUNCTION memory_usage_count();
DROP TABLE memory_usage;
ALTER TABLE memories DROP COLUMN data_bytes;
