-- Progress across parallel steps: count completed steps instead of trusting step indexes.
ALTER TABLE tasks ADD COLUMN steps_completed integer NOT NULL DEFAULT 0;
