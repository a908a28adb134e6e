import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Search attribute of every `connection` execution of a stored connector: its name. */
export const ConnectorNameKey = defineSearchAttributeKey('ConnectorName', SearchAttributeType.KEYWORD);
/** Search attribute of every `connection` execution: its connector type, e.g. `REST`. */
export const ConnectorTypeKey = defineSearchAttributeKey('ConnectorType', SearchAttributeType.KEYWORD);
