import socket

client = socket.socket()
addr = "127.0.0.1"
prot = 9696
client.connect((addr, prot))
data_to_server = f"你好!我是客户端!"
client.send(data_to_server.encode("utf-8"))
data_from_server = client.recv(1024)
print(f"data_from_server :>>>> {data_from_server.decode()}")
client.close()
