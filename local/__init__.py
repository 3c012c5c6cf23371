"""The local stack: DynamoDB Local, moto's SQS, the HTTP gateway and the queue poller."""
